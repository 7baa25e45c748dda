"""The worker's health record and dead letters, and a Redis outage. (What the engine decides of
quiet markets, late and bad ticks, and the health figures, is a unit test of the engine:
tests/unit/test_analytics_engine.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import redis

from shared import keys
from shared.schemas import Tick
from testkit.polling import eventually
from testkit.processes import RedisProcess
from testkit.streams import publish
from tests.analytics_support import (
    SYMBOLS,
    first_bar,
    recorded_between,
    running_worker,
    stream_stats,
)


def tick(symbol: str, ts: int, price: str, trade_id: int, size: str = "0.5") -> Tick:
    return Tick(ts, symbol, price, size, trade_id, "sell", int(time.time() * 1000))


async def test_bad_ticks_are_dead_lettered_and_the_health_record_kept(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    base = now - now % 1000 - 6_000
    live = [
        tick(symbol, base + offset, price, i + 1)
        for i, offset in enumerate(range(0, 4_000, 250))
        for symbol, price in ((SYMBOLS[0], f"{87000 + i}.5"), (SYMBOLS[1], f"{2900 + i % 5}.25"))
    ]
    async with running_worker(
        redis_url, sqlite_path=tmp_path / "none.db", window=5, bar_lateness_ms=300
    ) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        publish(sync_redis, live)
        bad = {
            "ts": str(base + 4_100), "symbol": SYMBOLS[0], "price": "abc", "size": "1",
            "trade_id": "99", "side": "buy", "recv_ts": str(now),
        }  # fmt: skip
        sync_redis.xadd(keys.ticks(SYMBOLS[0]), bad)  # type: ignore[arg-type]
        sync_redis.xadd(keys.ticks(SYMBOLS[0]), {**bad, "price": "0"})  # type: ignore[arg-type]
        sync_redis.xadd(keys.ticks(SYMBOLS[0]), {**bad, "price": "1", "symbol": SYMBOLS[1]})  # type: ignore[arg-type]
        sync_redis.xadd(keys.ticks(SYMBOLS[0]), {"junk": "1"})
        assert await eventually(lambda: sync_redis.xlen(keys.deadletter("analytics")) == 4)
        assert await eventually(lambda: ctx.health.counters.get("bars_closed_1s", 0) >= 4)
        await asyncio.sleep(0.5)
    record = sync_redis.hgetall(keys.health("analytics"))
    letters = [fields for _, fields in sync_redis.xrange(keys.deadletter("analytics"))]
    reasons = [fields["reason"] for fields in letters]
    assert "field 'price' is not a plain decimal: 'abc'" in reasons[0]
    assert "field 'price' is not above zero: '0'" in reasons[1]
    assert "field 'symbol' is 'ETHUSDT' on the stream of BTCUSDT" in reasons[2]
    assert "missing field" in reasons[3]
    assert json.loads(letters[0]["raw"])["fields"]["price"] == "abc"
    assert record["status"] == "stopped"
    assert int(record["ticks_consumed"]) == len(live)
    assert int(record["deadlettered"]) == 4
    assert int(record["late_ticks"]) == 0
    assert int(record["bars_closed_1s"]) >= 4
    assert int(record["pairs_served"]) == 1
    assert int(record["views_served"]) == 3
    assert int(record["stats_published"]) > 0
    assert int(record["last_update"]) >= now
    assert int(record["event_time"]) >= base + 3_750
    assert int(record["backlog"]) == 0
    assert 0 <= int(record["lag_ms"]) < 60_000


async def test_redis_outage_degrades_then_recovers_without_losing_output(
    redis_server: RedisProcess, redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    first = first_bar()
    key = keys.analytics_latest(*SYMBOLS, "1s")
    async with running_worker(redis_url, sqlite_path=tmp_path / "none.db", window=20) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        publish(sync_redis, recorded_between(0, 30))
        assert await eventually(lambda: int(sync_redis.hget(key, "ts") or 0) >= first + 28_000)
        redis_server.stop()
        assert await eventually(lambda: ctx.health.status == "degraded", within=10)
        await asyncio.sleep(0.5)
        redis_server.start()
        # The restarted server has no data (no AOF here): the worker recreates its groups and
        # goes on with what is published now.
        assert await eventually(lambda: ctx.health.status == "ok", within=10)
        publish(sync_redis, recorded_between(30, 60))
        assert await eventually(
            lambda: int(sync_redis.hget(key, "ts") or 0) >= first + 58_000, within=20
        )
        assert ctx.health.counters["redis_errors"] > 0
    stats = stream_stats(sync_redis, keys.analytics(*SYMBOLS, "1s"))
    starts = [s.ts for s in stats if s.ts <= first + 58_000]
    assert starts == list(range(starts[0], first + 59_000, 1000))
    assert starts[0] <= first + 30_000
