"""Views users ask for are served live, without a restart, filled from history at once; views do
not disturb each other nor the default series; an expired view is dropped. ("Run ADF now" is a
unit test of the engine: tests/unit/test_analytics_engine.py.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import redis
import statsmodels.api as sm

from shared import keys
from shared.pairstats import pair_stats
from shared.schemas import PairStat
from shared.views import PairView
from testkit.polling import eventually
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.analytics_support import (
    SYMBOLS,
    aligned_closes,
    first_bar,
    recorded_between,
    running_worker,
    store,
    stream_stats,
)

WINDOW = 20
FILL = 30


def assert_series(stats: list[PairStat], view: PairView, last_bar: int) -> None:
    """Consecutive bars, each equal to the batch computation on pandas bars."""
    closes = aligned_closes(recorded_ticks(), view.tf, last_bar)
    batch = {
        s.ts: s
        for s in pair_stats(
            closes["start"], closes[view.a], closes[view.b], window=view.window,
            method=view.method,
        )
    }  # fmt: skip
    assert stats, view.id
    starts = [s.ts for s in stats]
    assert starts == list(range(starts[0], starts[0] + 1000 * len(starts), 1000)), view.id
    for stat in stats:
        expected = batch[stat.ts]
        assert (stat.window, stat.method, stat.n) == (view.window, view.method, expected.n)
        for name in ("alpha", "beta", "zscore", "corr", "spread", "spread_mean", "spread_std"):
            assert getattr(stat, name) == pytest.approx(
                getattr(expected, name), rel=1e-9, abs=1e-9
            ), (view.id, stat.ts, name)


async def test_views_are_served_live_filled_from_history_and_independent(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    ticks, first = recorded_ticks(), first_bar()
    part1, part2 = recorded_between(0, 120), recorded_between(120)
    sqlite_path = tmp_path / "ticks.db"
    store(sqlite_path, part1)
    default = PairView(*SYMBOLS, "1s", WINDOW)
    kalman = PairView(*SYMBOLS, "1s", 100, "kalman")
    huber = PairView(*SYMBOLS, "1s", 30, "huber")
    short_lived = PairView(SYMBOLS[1], SYMBOLS[0], "1s", 25, "ols")
    async with running_worker(
        redis_url, sqlite_path=sqlite_path, window=WINDOW, view_fill_bars=FILL
    ) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        publish(sync_redis, part1)
        assert await eventually(
            lambda: int(sync_redis.hget(default.latest_key(WINDOW), "ts") or 0) >= first + 115_000
        )
        now = int(time.time() * 1000)
        sync_redis.zadd(
            keys.ANALYTICS_VIEWS,
            {kalman.id: now + 60_000, huber.id: now + 60_000, short_lived.id: now + 4_000,
             "BTCUSDT-SOLUSDT:1s:w20:ols": now + 60_000, "garbage": now + 60_000},
        )  # fmt: skip
        for view in (kalman, huber, short_lived):
            assert await eventually(lambda v=view: sync_redis.exists(v.latest_key(WINDOW)) == 1)
        filled = stream_stats(sync_redis, kalman.stream_key(WINDOW))
        assert len(filled) == FILL
        assert filled[0].n > WINDOW + FILL, "the kalman view's fill reached back into SQLite"
        for start in range(0, len(part2), 3_000):
            publish(sync_redis, part2[start : start + 3_000])
            await asyncio.sleep(0.05)
        newest = max(t.ts for t in ticks)
        last_bar = newest - newest % 1000 - 1000
        for view in (default, kalman, huber):
            assert await eventually(
                lambda v=view: int(sync_redis.hget(v.latest_key(WINDOW), "ts") or 0) >= last_bar
            ), view.id
        assert await eventually(lambda: sync_redis.exists(short_lived.stream_key(WINDOW)) == 0)
        await asyncio.sleep(0.6)
        assert ctx.health.counters["views_requested"] == 2
        assert ctx.health.counters["bad_views"] == 2
    events = [fields["detail"] for _, fields in sync_redis.xrange(keys.EVENTS)]
    assert any("SOLUSDT is not in SYMBOLS" in e for e in events)
    assert any("'garbage' is not a view id" in e for e in events)
    for view in (default, kalman, huber):
        stats = [s for s in stream_stats(sync_redis, view.stream_key(WINDOW)) if s.ts <= last_bar]
        assert_series(stats, view, last_bar)
        assert stats[-1].ts == last_bar
    closes = aligned_closes(ticks, "1s", last_bar).set_index("start")
    huber_stats = stream_stats(sync_redis, huber.stream_key(WINDOW))
    for stat in [s for s in huber_stats if s.ts <= last_bar][-5:]:
        window = closes.loc[: stat.ts].tail(stat.n)
        a, b = window[SYMBOLS[0]].to_numpy(), window[SYMBOLS[1]].to_numpy()
        params = sm.RLM(a, sm.add_constant(b), M=sm.robust.norms.HuberT()).fit().params
        np.testing.assert_allclose([stat.alpha, stat.beta], params, rtol=1e-9)
