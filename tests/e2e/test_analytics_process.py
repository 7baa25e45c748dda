"""`python -m services.analytics` as a real process: killed with SIGKILL mid-stream and started
again, its series read as if nothing had happened; SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from shared import keys
from shared.pairstats import pair_stats
from testkit.polling import wait_until
from testkit.processes import service_env, start_service
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.analytics_support import (
    SYMBOLS,
    aligned_closes,
    expected_bars,
    store,
    stream_bars,
    stream_stats,
)

WINDOW = 30


def latest_ts(client: redis.Redis) -> int:
    return int(client.hget(keys.analytics_latest(*SYMBOLS, "1s"), "ts") or 0)


def test_killed_worker_restarts_from_sqlite_and_streams(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    ticks = recorded_ticks()
    first = ticks[0].ts - ticks[0].ts % 1000
    newest = max(t.ts for t in ticks)
    last_bar = newest - newest % 1000 - 1000
    sqlite_path = tmp_path / "ticks.db"
    store(sqlite_path, [t for t in ticks if t.ts < first + 60_000])
    env = service_env(
        redis_url, SQLITE_PATH=str(sqlite_path), WINDOW=str(WINDOW), BAR_LATENESS_MS="2000",
        VIEW_FILL_BARS="50",
    )  # fmt: skip
    log = tmp_path / "analytics.log"
    process = start_service("analytics", env, log=log)
    try:
        health = keys.health("analytics")
        assert wait_until(lambda: sync_redis.hget(health, "status") == "ok", 30), log.read_text()
        publish(sync_redis, [t for t in ticks if t.ts < first + 100_000])
        assert wait_until(lambda: latest_ts(sync_redis) >= first + 96_000, 30), log.read_text()
        process.kill()
        process.wait(timeout=10)
        killed_at = latest_ts(sync_redis)
        store(sqlite_path, [t for t in ticks if t.ts < first + 90_000])
        publish(sync_redis, [t for t in ticks if t.ts >= first + 100_000])
        process = start_service("analytics", env, log=log)
        assert wait_until(lambda: latest_ts(sync_redis) >= last_bar, 60), log.read_text()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        assert sync_redis.hget(health, "status") == "stopped"
        assert int(sync_redis.hget(health, "late_ticks") or -1) == 0
    finally:
        if process.poll() is None:
            process.kill()
    stats = [
        s for s in stream_stats(sync_redis, keys.analytics(*SYMBOLS, "1s")) if s.ts <= last_bar
    ]
    closes = aligned_closes(ticks, "1s", last_bar)
    starts = closes["start"].tolist()
    # The first start filled the series from SQLite (VIEW_FILL_BARS); then every bar once.
    assert [s.ts for s in stats] == starts[starts.index(stats[0].ts) :], "each bar exactly once"
    assert stats[0].ts < first + 20_000
    batch = pair_stats(closes["start"], closes[SYMBOLS[0]], closes[SYMBOLS[1]], window=WINDOW)
    batch = batch[-len(stats) :]
    resumed = False
    for live, expected in zip(stats, batch, strict=True):
        assert live.ts == expected.ts
        resumed = resumed or live.ts > killed_at
        for name in ("alpha", "beta", "zscore", "corr"):
            assert getattr(live, name) == pytest.approx(getattr(expected, name), rel=1e-8, abs=1e-8)
    assert resumed
    for symbol in SYMBOLS:
        got = stream_bars(sync_redis, "1s", symbol)
        got = got[got["start"] <= last_bar]
        assert (
            got["close"].tolist() == expected_bars(ticks, symbol, "1s", last_bar)["close"].tolist()
        )
