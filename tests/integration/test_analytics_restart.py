"""A restart: the statistics are right on the first bar after it, rebuilt from SQLite + streams.

The first worker sees the first 150 s of the recording. It then stops, and the rest arrives while
it is down. The writer is behind (SQLite has the first 130 s) and Redis has trimmed the tick
streams (they keep the ticks from 110 s on), so the second worker needs both sources to rebuild
the last 60 bars. Every series must then read as if nothing had happened: each bar and each
statistic exactly once, each equal to pandas/statsmodels on the recorded trades.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import redis

from shared import keys
from shared.config import timeframe_ms
from shared.pairstats import pair_stats
from testkit.polling import eventually
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.analytics_support import (
    SYMBOLS,
    aligned_closes,
    expected_bars,
    first_bar,
    recorded_between,
    running_worker,
    store,
    stream_bars,
    stream_stats,
)

WINDOW = 60


async def test_statistics_right_on_the_first_bar_after_a_restart(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    ticks, first = recorded_ticks(), first_bar()
    part1, part2 = recorded_between(0, 150), recorded_between(150)
    sqlite_path = tmp_path / "ticks.db"
    store(sqlite_path, recorded_between(0, 130))
    key = keys.analytics(*SYMBOLS, "1s")
    publish(sync_redis, part1)
    # A long lateness keeps the first worker's bars well behind its ticks: it publishes the
    # bars up to 120 s, and holds 30 s of ticks in open bars when it stops.
    async with running_worker(
        redis_url, sqlite_path=sqlite_path, window=WINDOW, bar_lateness_ms=30_000
    ):
        assert await eventually(
            lambda: int(sync_redis.hget(f"{key}:latest", "ts") or 0) >= first + 118_000
        )
    before = stream_stats(sync_redis, key)
    restart_ts = before[-1].ts
    assert first + 118_000 <= restart_ts < first + 121_000
    for symbol in SYMBOLS:
        stream = keys.ticks(symbol)
        keep = sum(1 for t in part1 if t.symbol == symbol and t.ts >= first + 110_000)
        sync_redis.xtrim(stream, maxlen=keep, approximate=False)
    publish(sync_redis, part2)
    newest = max(t.ts for t in ticks)
    last_bar = newest - newest % 1000 - 1000
    async with running_worker(redis_url, sqlite_path=sqlite_path, window=WINDOW) as ctx:
        assert await eventually(
            lambda: int(sync_redis.hget(f"{key}:latest", "ts") or 0) >= last_bar
        )
        await asyncio.sleep(0.3)
        assert ctx.health.counters.get("rebuilt_history_bars", 0) > 0
        assert ctx.health.counters.get("rebuilt_stream_ticks", 0) > 0
        assert ctx.health.counters.get("late_ticks", 0) == 0
    stats = [s for s in stream_stats(sync_redis, key) if s.ts <= last_bar]
    closes = aligned_closes(ticks, "1s", last_bar)
    assert [s.ts for s in stats] == closes["start"].tolist()[2:], "each bar exactly once"
    after = [s for s in stats if s.ts > restart_ts]
    assert after[0].ts == restart_ts + 1000 and after[0].n == WINDOW
    batch = {
        s.ts: s
        for s in pair_stats(closes["start"], closes[SYMBOLS[0]], closes[SYMBOLS[1]], window=WINDOW)
    }
    for stat in after:
        expected = batch[stat.ts]
        assert stat.n == expected.n
        assert stat.beta == pytest.approx(expected.beta, rel=1e-9)
        assert stat.alpha == pytest.approx(expected.alpha, rel=1e-9)
        assert stat.zscore == pytest.approx(expected.zscore, rel=1e-8, abs=1e-8)
        assert stat.corr == pytest.approx(expected.corr, rel=1e-8, abs=1e-8)
    for tf in ("1s", "1m"):
        for symbol in SYMBOLS:
            got = stream_bars(sync_redis, tf, symbol)
            edge = last_bar - last_bar % timeframe_ms(tf) - timeframe_ms(tf)
            got = got[got["start"] <= edge].reset_index(drop=True)
            expected_frame = expected_bars(ticks, symbol, tf, edge)
            assert got["start"].tolist() == expected_frame["start"].tolist(), (tf, symbol)
            for column in ("open", "high", "low", "close", "trades"):
                np.testing.assert_array_equal(got[column], expected_frame[column], err_msg=column)
            np.testing.assert_allclose(got["volume"], expected_frame["volume"], rtol=1e-12)
