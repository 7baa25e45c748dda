"""Helpers for the writer's tests: realistic ticks from the recorded trades, publishing them as the
ingestor does (XADD of `Tick.to_fields()`), bad entries, and reading back what SQLite holds."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from services.writer import service
from shared import keys
from shared.config import load_settings
from shared.runtime import ServiceContext
from shared.schemas import StreamFields, Tick
from testkit.polling import eventually
from testkit.services import running_service

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
    """The writer service in this event loop, on a private Redis and a SQLite file; stopped
    (as SIGTERM would) on leaving. Its health counters are `ctx.health.counters`."""
    settings = load_settings(
        redis_url=redis_url, sqlite_path=sqlite_path, health_interval_s=0.2, **overrides
    )
    async with running_service("writer", settings, service.run) as ctx:
        assert await eventually(lambda: "entries" in ctx.health.counters or ctx.stop.is_set())
        yield ctx
