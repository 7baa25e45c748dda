"""Helpers for the writer's tests: realistic ticks from the recorded trades, publishing them as the
ingestor does (XADD of `Tick.to_fields()`), bad entries, and reading back what SQLite holds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from services.writer import service
from shared import keys
from shared.config import load_settings
from shared.health import Health
from shared.redis_io import client
from shared.runtime import ServiceContext
from shared.schemas import Side, StreamFields, Tick
from tests.recorded import market_trades

FIRST_TRADE_ID = 6_905_373_851


def recorded_ticks(count: int) -> list[Tick]:
    """`count` ticks in time order: the recorded trades of both symbols, repeated (each round
    shifted after the previous one) until there are enough; trade ids consecutive per symbol."""
    if count <= CACHED_TICKS:
        return list(_recorded_ticks(CACHED_TICKS)[:count])
    return list(_recorded_ticks(count))


CACHED_TICKS = 200_000


@functools.cache
def _recorded_ticks(count: int) -> tuple[Tick, ...]:
    trades = market_trades()
    span = trades[-1].ts - trades[0].ts + 1_000
    next_id: dict[str, int] = {}
    ticks: list[Tick] = []
    round_ = 0
    while len(ticks) < count:
        for n, trade in enumerate(trades):
            if len(ticks) == count:
                break
            trade_id = next_id.get(trade.symbol, FIRST_TRADE_ID)
            next_id[trade.symbol] = trade_id + 1
            ts = trade.ts + round_ * span
            side: Side = "sell" if n % 3 == 0 else "buy"
            ticks.append(Tick(ts, trade.symbol, trade.price, trade.size, trade_id, side, ts + 7))
        round_ += 1
    return tuple(ticks)


BAD_ENTRIES: tuple[tuple[str, StreamFields, str], ...] = (
    ("BTCUSDT", {"ts": "1765892498698", "symbol": "BTCUSDT", "price": "87162.1"}, "missing"),
    ("BTCUSDT", {**Tick(1, "BTCUSDT", "1", "1", 1, "buy", 1).to_fields(), "price": "8e4"}, "price"),
    ("ETHUSDT", {**Tick(1, "ETHUSDT", "1", "1", 1, "buy", 1).to_fields(), "ts": "soon"}, "ts"),
    ("ETHUSDT", {**Tick(1, "ETHUSDT", "1", "1", 1, "buy", 1).to_fields(), "side": "up"}, "side"),
    ("ETHUSDT", Tick(1, "BTCUSDT", "1", "1", 99, "buy", 1).to_fields(), "symbol"),
)
"""(symbol of the stream, fields, what is wrong): entries the writer must dead-letter."""


@dataclass(frozen=True)
class Published:
    """What a test published: the ticks (duplicates included) and the bad entries."""

    ticks: list[Tick]
    bad: int

    def unique(self) -> pd.DataFrame:
        """The unique ticks as the `ticks` table should hold them."""
        frame = pd.DataFrame(
            [(t.symbol, t.trade_id, t.ts, t.price, t.size, t.side, t.recv_ts) for t in self.ticks],
            columns=["symbol", "trade_id", "ts", "price", "size", "side", "recv_ts"],
        )
        return frame.drop_duplicates(["symbol", "trade_id"]).sort_values(
            ["symbol", "trade_id"], ignore_index=True
        )


def publish(client: redis.Redis, ticks: Sequence[Tick], *, chunk: int = 2_000) -> None:
    """XADD each tick to `ticks:<SYMBOL>`, pipelined, as the ingestor does."""
    for start in range(0, len(ticks), chunk):
        pipe = client.pipeline(transaction=False)
        for tick in ticks[start : start + chunk]:
            pipe.xadd(keys.ticks(tick.symbol), tick.to_fields())
        pipe.execute()


def publish_bad(client: redis.Redis) -> int:
    for symbol, fields, _ in BAD_ENTRIES:
        client.xadd(keys.ticks(symbol), fields)
    return len(BAD_ENTRIES)


def with_replays(ticks: Sequence[Tick], every: int) -> Iterator[Tick]:
    """The ticks, with every `every`-th one published a second time a little later (as a
    reconnecting feed or a replay would)."""
    for n, tick in enumerate(ticks):
        yield tick
        if n % every == every - 1:
            yield ticks[n - every // 2]


def stored_ticks(path: Path) -> pd.DataFrame:
    conn = sqlite3.connect(path)
    try:
        return pd.read_sql_query(
            "SELECT symbol, trade_id, ts, price, size, side, recv_ts FROM ticks "
            "ORDER BY symbol, trade_id",
            conn,
        )
    finally:
        conn.close()


def count_rows(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM ticks").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def group_pending(client: redis.Redis, symbols: Sequence[str]) -> int:
    return sum(int(client.xpending(keys.ticks(s), keys.WRITER_GROUP)["pending"]) for s in symbols)


def pandas_bars(ticks: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Reference bars: pandas resampling of ticks (`ts`, `price`, `size` as floats)."""
    indexed = ticks.assign(
        time=pd.to_datetime(ticks["ts"], unit="ms"), notional=ticks["price"] * ticks["size"]
    ).set_index("time")
    grouped = indexed.resample(rule)
    bars = pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["price"].max(),
            "low": grouped["price"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["size"].sum(),
            "vwap": grouped["notional"].sum() / grouped["size"].sum(),
            "trades": grouped["price"].count(),
        }
    )
    bars = bars[bars["trades"] > 0]
    bars.insert(0, "start", pd.DatetimeIndex(bars.index).as_unit("ms").asi8)
    return bars.reset_index(drop=True)


@contextlib.asynccontextmanager
async def running_writer(
    redis_url: str, sqlite_path: Path, **overrides: Any
) -> AsyncIterator[ServiceContext]:
    """The writer's service body in this event loop, on a private Redis and a SQLite file;
    stopped (as SIGTERM would) on leaving. Its health counters are `ctx.health.counters`."""
    settings = load_settings(
        redis_url=redis_url, sqlite_path=sqlite_path, health_interval_s=0.2, **overrides
    )
    ctx = ServiceContext("writer", settings, client(redis_url), Health("writer"), asyncio.Event())
    task = asyncio.create_task(service.run(ctx))
    try:
        await eventually(lambda: "entries" in ctx.health.counters or task.done())
        yield ctx
    finally:
        ctx.stop.set()
        await asyncio.wait_for(task, timeout=15)
        await ctx.redis.aclose()


async def eventually(predicate: Callable[[], Any], within: float = 15.0) -> None:
    """Poll `predicate` (sync or async) until truthy; fail the test after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)
