"""The writer: rows per second from Redis into SQLite, and stream-to-commit lag at 5,000 ticks/s,
beside a bare XREADGROUP COUNT 1000 + XACK loop and a bare batched SQLite insert loop measured in
the same run; plus the history queries on a day of ticks.

- throughput: 200,000 recorded ticks (two symbols) waiting in the streams; the writer's service
  body in this process; time until the last one is committed and acknowledged.
- lag: `python -m services.writer` as its own process; this process publishes 5,000 ticks/s for
  `LAG_SECONDS` and polls SQLite every 5 ms; a tick's lag is the first poll that sees it minus
  the time it was sent to Redis.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.harness import percentiles, private_redis, rate
from services.writer import service
from services.writer.store import TickStore
from shared import keys
from shared.config import load_settings
from shared.history import History
from shared.redis_io import client, ensure_group, read_group
from shared.schemas import Tick
from shared.tickdb import INSERT_TRADES, MIGRATIONS
from testkit.polling import wait_until
from testkit.processes import service_env, start_service
from testkit.recorded import recorded_ticks
from testkit.services import running_service
from testkit.streams import publish

ENTRIES = 200_000
RATE_PER_S = 5_000
LAG_SECONDS = 20
STEP_S = 0.01
DAY_MS = 86_400_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
INSERT = INSERT_TRADES


def tick_rows(ticks: Sequence[Tick]) -> list[tuple[str, int, int, str, str, str, int]]:
    return [(t.symbol, t.trade_id, t.ts, t.price, t.size, t.side, t.recv_ts) for t in ticks]


async def bare_read_loop(url: str) -> float:
    """XREADGROUP COUNT 1000 + XACK, redis-py's parsed replies, nothing else."""
    redis = client(url)
    streams = {keys.ticks(s): ">" for s in SYMBOLS}
    for stream in streams:
        await ensure_group(redis, stream, "bare")
    read = 0
    started = time.perf_counter()
    while reply := await read_group(redis, "bare", "c", streams, count=1_000):
        for stream, entries in reply:
            await redis.xack(stream, "bare", *(entry_id for entry_id, _ in entries))
            read += len(entries)
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return rate(read, elapsed)


def bare_insert_loop(rows: list[Any], directory: Path, *, schema: str) -> float:
    """executemany of 1,000-row batches, one transaction each, WAL + synchronous=NORMAL.
    `schema`: `full`, or `ticks` (the table without the one-second-bar triggers)."""
    conn = sqlite3.connect(directory / f"bare-{schema}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript("".join(MIGRATIONS))
    if schema == "ticks":
        conn.executescript(
            "DROP TRIGGER ticks_add_to_bars_1s; DROP TRIGGER ticks_remove_from_bars_1s;"
        )
    started = time.perf_counter()
    for start in range(0, len(rows), 1_000):
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows[start : start + 1_000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return rate(len(rows), elapsed)


async def writer_throughput(url: str, db: Path) -> dict[str, Any]:
    settings = load_settings(redis_url=url, sqlite_path=db)
    async with running_service("writer", settings, service.run) as ctx:
        started = time.perf_counter()
        while int(ctx.health.counters.get("entries", 0)) < ENTRIES:  # noqa: ASYNC110 (sampling)
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    return {
        "writer_rows_per_s": rate(int(ctx.health.counters["rows_written"]), elapsed),
        "writer_batches": int(ctx.health.counters["batches"]),
    }


async def _publish_paced(
    url: str, ticks: Sequence[Tick], sent: list[tuple[float, int, int]]
) -> None:
    """`RATE_PER_S` ticks a second in steps of `STEP_S`; records (send time, index range)."""
    redis = client(url)
    per_step = int(RATE_PER_S * STEP_S)
    started = time.perf_counter()
    for step, first in enumerate(range(0, len(ticks), per_step)):
        await asyncio.sleep(max(0.0, started + step * STEP_S - time.perf_counter()))
        pipe = redis.pipeline(transaction=False)
        for tick in ticks[first : first + per_step]:
            pipe.xadd(keys.ticks(tick.symbol), tick.to_fields())
        sent.append((time.perf_counter(), first, min(first + per_step, len(ticks))))
        await pipe.execute()
    await redis.aclose()


async def _poll(db_uri: str, done: asyncio.Event, seen: list[tuple[float, int]]) -> None:
    """Every 5 ms: how many ticks SQLite holds (the bars keep the count, one cheap query)."""
    conn = sqlite3.connect(f"{db_uri}?mode=ro", uri=True)
    while not done.is_set():
        count = conn.execute("SELECT coalesce(sum(trades), 0) FROM bars_1s").fetchone()[0]
        seen.append((time.perf_counter(), int(count)))
        await asyncio.sleep(0.005)
    conn.close()


async def _lag_run(url: str, db_uri: str, ticks: Sequence[Tick]) -> list[float]:
    sent: list[tuple[float, int, int]] = []
    seen: list[tuple[float, int]] = []
    done = asyncio.Event()
    polling = asyncio.create_task(_poll(db_uri, done, seen))
    await _publish_paced(url, ticks, sent)
    deadline = time.perf_counter() + 30
    while (not seen or seen[-1][1] < len(ticks)) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    done.set()
    await polling
    # Ticks are committed in the order sent (one writer, streams read in order), so the
    # count stored says which ticks are in.
    poll_times = np.array([t for t, _ in seen])
    poll_counts = np.array([n for _, n in seen])
    lags = []
    for sent_at, _first, last in sent:
        index = int(np.searchsorted(poll_counts, last, side="left"))
        if index < len(poll_times):
            lags.append((poll_times[index] - sent_at) * 1000)
    return lags


def writer_lag(url: str, directory: Path) -> dict[str, Any]:
    ticks = recorded_ticks(ENTRIES + RATE_PER_S * LAG_SECONDS)[ENTRIES:]
    db = directory / "lag.db"
    env = service_env(url, SQLITE_PATH=str(db), LOG_LEVEL="WARNING")
    process = start_service("writer", env, log=directory / "writer.log")
    try:
        assert wait_until(db.exists, 20)
        time.sleep(1.0)
        lags = asyncio.run(_lag_run(url, db.resolve().as_uri(), ticks))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    stats = percentiles(lags)
    return {f"lag_at_5000_per_s_{name}": value for name, value in stats.items()}


def history_queries(directory: Path) -> dict[str, Any]:
    """A day of one symbol (about 1.2 million ticks, one every 70 ms on average)."""
    db = directory / "day.db"
    store = TickStore.open(db, busy_timeout_ms=5_000)
    rng = random.Random(7)
    day = 1_765_843_200_000
    ts, price, trade_id, rows = day, 87_000.0, 1, []
    while ts < day + DAY_MS:
        ts += int(rng.expovariate(1 / 70))
        price += rng.gauss(0, 0.5)
        rows.append(("BTCUSDT", trade_id, ts, f"{price:.1f}", f"{rng.random():.3f}", "buy", ts))
        trade_id += 1
        if len(rows) == 50_000:
            store.write(rows)
            rows = []
    store.write(rows)
    store.close()
    history = History(db)
    results: dict[str, Any] = {"history_day_ticks": trade_id - 1}
    for tf in ("1s", "1m", "1h"):
        history.bars("BTCUSDT", tf, day, day + DAY_MS)
        started = time.perf_counter()
        bars = history.bars("BTCUSDT", tf, day, day + DAY_MS)
        results[f"history_day_of_{tf}_bars_ms"] = round((time.perf_counter() - started) * 1000, 1)
        results[f"history_day_of_{tf}_bars_rows"] = len(bars)
    started = time.perf_counter()
    hour = history.ticks("BTCUSDT", day, day + 3_600_000)
    results["history_hour_of_ticks_ms"] = round((time.perf_counter() - started) * 1000, 1)
    results["history_hour_of_ticks_rows"] = len(hour)
    history.close()
    return results


def run() -> dict[str, Any]:
    ticks = recorded_ticks(ENTRIES)
    rows = tick_rows(ticks)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as name:
        directory = Path(name)
        with private_redis() as server:
            sync = redis.Redis.from_url(server.url, decode_responses=True)
            publish(sync, ticks)
            results["bare_xreadgroup_xack_per_s"] = asyncio.run(bare_read_loop(server.url))
            results.update(asyncio.run(writer_throughput(server.url, directory / "ticks.db")))
            sync.flushdb()
            results.update(writer_lag(server.url, directory))
            sync.close()
        results["bare_sqlite_insert_per_s"] = bare_insert_loop(rows, directory, schema="ticks")
        results["bare_sqlite_insert_with_bar_triggers_per_s"] = bare_insert_loop(
            rows, directory, schema="full"
        )
        results.update(history_queries(directory))
    for name, value in results.items():
        print(f"   {name:44s} {value:>12,}")
    return results
