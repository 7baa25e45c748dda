"""Helpers for the analytics tests: recorded ticks into the engine, Redis and SQLite, the bars
pandas expects, and the real worker run in-process against the private redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from services.analytics import service
from services.analytics.engine import Engine
from services.analytics.fill import compute_sliced
from services.analytics.outputs import (
    BadEntry,
    BarOut,
    Problem,
    StatOut,
    Step,
    ViewProgress,
    Wanted,
)
from services.analytics.ticks import RawEntry
from shared import keys
from shared.config import Settings, load_settings, timeframe_ms
from shared.history import History
from shared.runtime import ServiceContext
from shared.schemas import Alert, Bar, PairStat, Tick
from shared.tickdb import INSERT_TRADES, open_for_writing
from testkit.recorded import recorded_ticks
from testkit.services import running_service

SYMBOLS = ("BTCUSDT", "ETHUSDT")
PANDAS_RULES = {"1s": "1s", "1m": "1min", "5m": "5min"}


def first_bar() -> int:
    """Start of the 1 s bar of the recording's first trade."""
    first = recorded_ticks()[0].ts
    return first - first % 1000


def recorded_between(start_s: float = 0, end_s: float = float("inf")) -> list[Tick]:
    """The recorded ticks from `start_s` to `end_s` seconds after `first_bar()` (half-open)."""
    lo, hi = first_bar() + start_s * 1000, first_bar() + end_s * 1000
    return [t for t in recorded_ticks() if lo <= t.ts < hi]


def store(path: Path, ticks: Sequence[Tick]) -> None:
    """Write ticks to SQLite as the writer does."""
    conn = open_for_writing(path)
    conn.execute("BEGIN")
    conn.executemany(
        INSERT_TRADES,
        [(t.symbol, t.trade_id, t.ts, t.price, t.size, t.side, t.recv_ts) for t in ticks],
    )
    conn.execute("COMMIT")
    conn.close()


def tick_frame(ticks: Sequence[Tick]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(t.symbol, t.ts, float(Decimal(t.price)), float(Decimal(t.size))) for t in ticks],
        columns=["symbol", "ts", "price", "size"],
    )
    return frame


def expected_bars(ticks: Sequence[Tick], symbol: str, tf: str, last_start: int) -> pd.DataFrame:
    """pandas resampling of one symbol's ticks, intervals without trades at the previous close
    with volume 0, from its first bar to `last_start`."""
    frame = tick_frame([t for t in ticks if t.symbol == symbol])
    indexed = frame.assign(
        time=pd.to_datetime(frame["ts"], unit="ms"), notional=frame["price"] * frame["size"]
    ).set_index("time")
    grouped = indexed.resample(PANDAS_RULES[tf])
    bars = pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["price"].max(),
            "low": grouped["price"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["size"].sum(),
            "notional": grouped["notional"].sum(),
            "trades": grouped["price"].count(),
        }
    )
    bars.insert(0, "start", bars.index.as_unit("ms").asi8)
    bars = bars.reset_index(drop=True)
    step = timeframe_ms(tf)
    starts = np.arange(int(bars["start"].iloc[0]), last_start + 1, step, dtype=np.int64)
    bars = bars.set_index("start").reindex(starts)
    bars["close"] = bars["close"].ffill()
    empty = bars["trades"].isna() | (bars["trades"] == 0)
    for column in ("open", "high", "low"):
        bars.loc[empty, column] = bars.loc[empty, "close"]
    bars.loc[empty, ["volume", "notional", "trades"]] = 0
    bars["vwap"] = np.where(empty, bars["close"], bars["notional"] / bars["volume"])
    bars["trades"] = bars["trades"].astype(int)
    return bars.drop(columns="notional").rename_axis("start").reset_index()


def aligned_closes(ticks: Sequence[Tick], tf: str, last_start: int) -> pd.DataFrame:
    """Close of each symbol per interval where both have traded: `start`, one column each."""
    columns = {
        symbol: expected_bars(ticks, symbol, tf, last_start).set_index("start")["close"]
        for symbol in SYMBOLS
    }
    return pd.DataFrame(columns).dropna().rename_axis("start").reset_index()


def stream_bars(client: redis.Redis, tf: str, symbol: str) -> pd.DataFrame:
    entries = client.xrange(keys.bars(tf, symbol))
    bars = [Bar.from_fields(fields) for _, fields in entries]  # type: ignore[misc]
    return pd.DataFrame([vars_of(bar) for bar in bars])


def vars_of(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def stream_stats(client: redis.Redis, key: str) -> list[PairStat]:
    return [PairStat.from_fields(fields) for _, fields in client.xrange(key)]  # type: ignore[misc]


@contextlib.asynccontextmanager
async def running_worker(redis_url: str, **overrides: Any) -> AsyncIterator[ServiceContext]:
    """The real analytics service, in this process, on the test's Redis; stopped on exit."""
    settings = load_settings(redis_url=redis_url, health_interval_s=0.2, **overrides)
    async with running_service("analytics", settings, service.run) as ctx:
        yield ctx


def raw_batch(ticks: Iterable[Tick]) -> list[tuple[str, list[RawEntry]]]:
    """Ticks as one XREADGROUP reply gives them to the worker: per stream, (id, flat fields)."""
    streams: dict[str, list[RawEntry]] = {}
    for i, tick in enumerate(ticks):
        flat = [str(x) for pair in tick.to_fields().items() for x in pair]
        streams.setdefault(keys.ticks(tick.symbol), []).append((f"{i}-0", flat))
    return list(streams.items())


def engine_settings(**overrides: Any) -> Settings:
    return load_settings(redis_url="redis://127.0.0.1:1/0", **overrides)


@dataclass
class EngineRun:
    """The engine as the worker drives it, without Redis: what every call returned, in order."""

    engine: Engine
    steps: list[Step] = field(default_factory=list)
    wall: float = 0.0
    bad: list[BadEntry] = field(default_factory=list)
    fed: list[Tick] = field(default_factory=list)
    """Every tick fed: what the tick streams hold."""

    @classmethod
    def start(cls, settings: Settings, wanted: Wanted | None = None) -> EngineRun:
        """An engine started on empty streams and no history, as `service.Worker.start`."""
        run = cls(Engine(settings))
        run.steps.append(run.engine.configure(wanted or Wanted({}, 0, [])))
        run.close(run.engine.resume(None, run.wall))
        return run

    def restarted(self, wanted: Wanted | None = None) -> EngineRun:
        """A new engine on what this one left in Redis, rebuilt as `service.Worker.start` does
        with no SQLite: the streams' progress, the tick streams replayed in trade-time order,
        the alerts sent; then the bars due are closed."""
        engine = Engine(self.engine.settings)
        run = EngineRun(engine, fed=list(self.fed))
        run.steps.append(engine.configure(wanted or Wanted({}, 0, [])))
        index = {symbol: i for i, symbol in enumerate(engine.symbols)}
        bars = {(out.tf, index[out.symbol]): out.bar.start for s in self.steps for out in s.bars}
        progress = [
            ViewProgress(state.id, stats[-1].ts, stats[-1])
            for state in engine.views()
            if (stats := self.stats(state.stream_key))
        ]
        engine.restore_progress(bars, progress, engine.settings.view_fill_bars)
        replay = sorted(self.fed, key=lambda t: t.ts)
        engine.restore_bars(
            [], [(t.ts, index[t.symbol], float(t.price), float(t.size)) for t in replay]
        )
        engine.restore_fired([alert for step in self.steps for alert in step.alerts])
        run.close(engine.resume(replay[-1].ts if replay else None, run.wall))
        return run

    def close(self, step: Step | None) -> None:
        if step is not None:
            self.steps += [step, self.engine.complete()]

    def feed(self, ticks: Sequence[Tick], *, chunk: int = 2_000, step_ms: float = 10.0) -> None:
        """Ingest `ticks` in batches of `chunk`, wall time moving `step_ms` per batch, closing
        what the clock allows after each."""
        self.fed += ticks
        for lo in range(0, len(ticks), chunk):
            self.ingest(raw_batch(ticks[lo : lo + chunk]), step_ms)

    def want(self, wanted: Wanted, history: History | None) -> Step:
        """The views and rules as stored now (as the worker polls them), and the fills that
        asks for, each run to its end as `fill.fill_view` runs it."""
        step = self.engine.set_wanted(wanted)
        self.steps.append(step)
        for view_id in step.fills:
            self.fill(view_id, history)
        return step

    def fill(self, view_id: str, history: History | None) -> None:
        engine = self.engine
        if engine.fill_wanted(view_id) is None:
            return
        for leg in (0, 1):
            read = engine.history_read(view_id, leg)
            if read is not None and history is not None:
                engine.backfill(read, history.bars(read.name, read.tf, read.first, read.oldest))
        job = engine.fill_job(view_id)
        assert job is not None
        stats = asyncio.run(compute_sliced(job)) if len(job.ts) else []
        outs = [StatOut(job.stream_key, job.latest_key, stat, latest=False) for stat in stats]
        self.steps.append(Step(deletes=[job.stream_key, job.latest_key], stats=outs))
        self.steps.append(engine.fill_done(job, stats).step)

    def ingest(self, streams: list[tuple[str, list[RawEntry]]], step_ms: float = 10.0) -> None:
        """One batch as read from Redis, then what the clock allows closed."""
        self.wall += step_ms
        ingested = self.engine.ingest(streams, self.wall, 1_000)
        self.steps.append(ingested.step)
        self.bad += ingested.bad
        step = self.engine.close(self.wall, ingested.held)
        if step is not None and step.closed:
            self.close(step)

    def idle(self, ms: float) -> None:
        """Wall time passes without ticks: the clock moves on and closes what is due."""
        self.wall += ms
        step = self.engine.close(self.wall)
        if step is not None and step.closed:
            self.close(step)

    def bars(self, tf: str, symbol: str) -> pd.DataFrame:
        """The bars written to `bars:<tf>:<symbol>`, as `stream_bars` reads them."""
        outs: list[BarOut] = [
            out for step in self.steps for out in step.bars if (out.tf, out.symbol) == (tf, symbol)
        ]
        return pd.DataFrame([vars_of(out.bar) for out in outs])

    def stats(self, key: str) -> list[PairStat]:
        """The entries the stream `key` holds, in order (none after it was deleted)."""
        held: list[PairStat] = []
        for step in self.steps:
            if key in step.deletes:
                held = []
            held += [out.stat for out in step.stats if out.stream and out.stream_key == key]
        return held

    def exists(self, key: str) -> bool:
        """Whether the stream or latest hash `key` was written since it was last deleted."""
        written = False
        for step in self.steps:
            if key in step.deletes:
                written = False
            streams = {out.stream_key for out in step.stats if out.stream}
            latest = {out.latest_key for out in step.stats if out.latest}
            written = written or key in streams | latest
        return written

    def latest(self, key: str) -> PairStat:
        """What the latest hash `key` holds: the newest entry made latest, with the fields
        set on it since (the stationarity computed on request)."""
        stat: PairStat | None = None
        for step in self.steps:
            for out in step.stats:
                if out.latest and out.latest_key == key:
                    stat = out.stat
            for hashed in step.fields:
                if hashed.key == key and stat is not None:
                    stat = PairStat.from_fields({**stat.to_fields(), **hashed.fields})
        assert stat is not None, f"nothing was made latest on {key}"
        return stat

    def alerts(self) -> list[Alert]:
        return [alert for step in self.steps for alert in step.alerts]

    def problems(self) -> list[Problem]:
        return [problem for step in self.steps for problem in step.problems]

    def count(self, name: str) -> int:
        return sum(step.counts.get(name, 0) for step in self.steps)


PAIR = "-".join(SYMBOLS)


def rule(name: str, **fields: object) -> str:
    body = {"name": name, "pair": PAIR, "tf": "1s", "metric": "zscore", "op": "abs>",
            "threshold": 1.5, "cooldown_s": 0, **fields}  # fmt: skip
    return json.dumps(body)


def expected_firings(
    stats: list[PairStat], holds: Callable[[PairStat], bool], cooldown_ms: int
) -> list[int]:
    """Bars where the condition turns true, and no firing happened within the cooldown."""
    fired: list[int] = []
    previous = False
    for stat in stats:
        now = holds(stat)
        if now and not previous and (not fired or stat.ts - fired[-1] >= cooldown_ms):
            fired.append(stat.ts)
        previous = now
    return fired
