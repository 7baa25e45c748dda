"""Views users ask for, through the worker: read from `analytics-views` without a restart, filled
from history at once, dropped (their keys deleted) when they expire, bad ones reported. (What
the engine computes for them, and that they do not disturb each other, is a unit test of the
engine: tests/unit/test_analytics_engine.py.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis

from shared import keys
from shared.views import PairView
from testkit.polling import eventually
from testkit.streams import publish
from tests.analytics_support import (
    SYMBOLS,
    first_bar,
    recorded_between,
    running_worker,
    store,
    stream_stats,
)

WINDOW = 20
FILL = 30


async def test_views_asked_for_are_filled_from_history_served_and_dropped_when_expired(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    first = first_bar()
    part1 = recorded_between(0, 120)
    sqlite_path = tmp_path / "ticks.db"
    store(sqlite_path, part1)
    default = PairView(*SYMBOLS, "1s", WINDOW)
    kalman = PairView(*SYMBOLS, "1s", 100, "kalman")
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
            {kalman.id: now + 60_000, short_lived.id: now + 3_000,
             "BTCUSDT-SOLUSDT:1s:w20:ols": now + 60_000, "garbage": now + 60_000},
        )  # fmt: skip
        for view in (kalman, short_lived):
            assert await eventually(lambda v=view: sync_redis.exists(v.latest_key(WINDOW)) == 1)
        filled = stream_stats(sync_redis, kalman.stream_key(WINDOW))
        assert len(filled) == FILL
        assert filled[0].n > WINDOW + FILL, "the kalman view's fill reached back into SQLite"
        assert await eventually(lambda: sync_redis.exists(short_lived.stream_key(WINDOW)) == 0)
        assert sync_redis.exists(short_lived.latest_key(WINDOW)) == 0
        await asyncio.sleep(0.6)
        assert ctx.health.counters["views_requested"] == 1
        assert ctx.health.counters["bad_views"] == 2
    events = [fields["detail"] for _, fields in sync_redis.xrange(keys.EVENTS)]
    assert any("SOLUSDT is not in SYMBOLS" in e for e in events)
    assert any("'garbage' is not a view id" in e for e in events)
