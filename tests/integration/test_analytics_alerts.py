"""Alert rules in the running worker: malformed rules reported once while it keeps running, alerts
published as they are added, and once only when sent again. (Firing per crossing, the cooldown,
rules that watch another view and rules across a restart are unit tests of the engine:
test_analytics_engine.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import redis

from services.analytics.redis_wire import Outbox
from shared import keys
from shared.config import load_settings
from shared.redis_io import Redis
from shared.schemas import Alert
from testkit.polling import eventually
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.analytics_support import PAIR, rule, running_worker

WINDOW = 20


async def test_bad_rules_are_reported_once_and_alerts_stored_as_published(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    """The worker's wiring of what the engine decides (tests/unit/test_analytics_engine.py): bad
    rules reported once to the events stream while it keeps running, every alert published as
    it is added."""
    ticks = recorded_ticks()[:40_000]
    sync_redis.hset(
        keys.ALERT_RULES,
        mapping={
            "z-every": rule("z every crossing"),
            "broken": "{not json",
            "bad-op": rule("bad op", op="=="),
            "other-pair": rule("unserved", pair="BTCUSDT-SOLUSDT"),
        },
    )
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(keys.ALERTS)
    async with running_worker(redis_url, sqlite_path=tmp_path / "none.db", window=WINDOW) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        publish(sync_redis, ticks)
        assert await eventually(lambda: sync_redis.xlen(keys.ALERTS) > 0)
        await asyncio.sleep(1.2)
        assert ctx.health.status == "ok"
        assert ctx.health.counters["bad_rules"] == 3
        assert ctx.health.counters["rules_active"] == 1
    messages = []
    while (message := pubsub.get_message(timeout=0.1)) is not None:
        if message["type"] == "message":
            messages.append(json.loads(message["data"]))
    pubsub.close()
    assert len(messages) == sync_redis.xlen(keys.ALERTS)
    assert messages[0]["rule"] == sync_redis.xrange(keys.ALERTS)[0][1]["rule"]
    details = [fields["detail"] for _, fields in sync_redis.xrange(keys.EVENTS)]
    reported = [d for d in details if d.startswith("rule ")]
    assert len(reported) == 3, "each bad rule is reported once"
    assert any("'broken'" in d and "not valid JSON" in d for d in reported)
    assert any("'bad-op'" in d and "op must be one of" in d for d in reported)
    assert any("'other-pair'" in d and "SOLUSDT is not in SYMBOLS" in d for d in reported)


async def test_an_alert_sent_again_is_added_and_published_once(
    redis_client: Redis, sync_redis: redis.Redis
) -> None:
    """A batch resent after a broken connection (or a worker restarted) repeats its commands."""
    outbox = Outbox(load_settings(redis_url="redis://127.0.0.1:1/0"))
    alert = Alert("z2", PAIR, "1m", "zscore", 2.5, 2.0, 1_765_892_520_000, "z above 2")
    later = Alert("z2", PAIR, "1m", "zscore", 2.6, 2.0, 1_765_892_580_000, "z above 2")
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(keys.ALERTS)
    for sent in (alert, alert, later, alert):
        outbox.alert(sent)
        await outbox.flush(redis_client)
    stored = [Alert.from_fields(f) for _, f in sync_redis.xrange(keys.ALERTS)]  # type: ignore[misc]
    assert stored == [alert, later]
    published = []
    while (message := pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "message":
            published.append(Alert.from_fields(json.loads(message["data"])))
    pubsub.close()
    assert published == [alert, later]
    ttl = sync_redis.pttl(keys.alert_sent("z2", "1m", alert.ts))
    assert 0 < ttl <= keys.ALERT_SENT_TTL_MS
