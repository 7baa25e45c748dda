"""Alert rules on the recorded data: one firing per crossing, the cooldown respected, rules that
watch another view, and malformed rules reported once while the worker keeps running."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import redis

from services.analytics.redis_wire import Outbox
from shared import keys
from shared.config import load_settings
from shared.pairstats import pair_stats
from shared.redis_io import Redis
from shared.schemas import Alert, PairStat
from shared.views import PairView
from testkit.polling import eventually
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.analytics_support import SYMBOLS, aligned_closes, running_worker

WINDOW = 20
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


async def test_rules_fire_once_per_crossing_with_cooldown_and_survive_bad_rules(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    ticks = recorded_ticks()
    newest = max(t.ts for t in ticks)
    last_bar = newest - newest % 1000 - 1000
    kalman = PairView(*SYMBOLS, "1s", 30, "kalman")
    sync_redis.hset(
        keys.ALERT_RULES,
        mapping={
            "z-every": rule("z every crossing"),
            "z-cooldown": rule("z at most every 30 s", cooldown_s=30),
            "z-corr": rule(
                "z up with correlated legs", op=">", threshold=1.0,
                conditions=[{"metric": "corr", "op": ">", "threshold": 0.3}],
            ),
            "kalman-z": rule("kalman z", window=30, method="kalman"),
            "off": rule("disabled", enabled=False, threshold=0.0),
            "broken": "{not json",
            "bad-op": rule("bad op", op="=="),
            "other-pair": rule("unserved", pair="BTCUSDT-SOLUSDT"),
        },
    )  # fmt: skip
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(keys.ALERTS)
    async with running_worker(redis_url, sqlite_path=tmp_path / "none.db", window=WINDOW) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        for lo in range(0, len(ticks), 3_000):
            publish(sync_redis, ticks[lo : lo + 3_000])
            await asyncio.sleep(0.02)
        assert await eventually(
            lambda: int(sync_redis.hget(kalman.latest_key(WINDOW), "ts") or 0) >= last_bar
        )
        await asyncio.sleep(1.2)
        assert ctx.health.status == "ok"
        assert ctx.health.counters["bad_rules"] == 3
        assert ctx.health.counters["rules_active"] == 4
    alerts = [Alert.from_fields(f) for _, f in sync_redis.xrange(keys.ALERTS)]  # type: ignore[misc]
    alerts = [a for a in alerts if a.ts <= last_bar]
    closes = aligned_closes(ticks, "1s", last_bar)
    a, b = closes[SYMBOLS[0]], closes[SYMBOLS[1]]
    default_stats = pair_stats(closes["start"], a, b, window=WINDOW)
    kalman_stats = pair_stats(closes["start"], a, b, window=30, method="kalman")

    def fired(rule_id: str) -> list[int]:
        return [alert.ts for alert in alerts if alert.rule == rule_id]

    crossings = expected_firings(default_stats, lambda s: abs(s.zscore) > 1.5, 0)
    assert len(crossings) >= 5, "the recording crosses |z| = 1.5 several times"
    assert fired("z-every") == crossings
    cooled = expected_firings(default_stats, lambda s: abs(s.zscore) > 1.5, 30_000)
    assert fired("z-cooldown") == cooled
    assert len(cooled) < len(crossings)
    assert all(b - a >= 30_000 for a, b in itertools.pairwise(cooled))
    assert fired("z-corr") == expected_firings(
        default_stats, lambda s: s.zscore > 1.0 and s.corr > 0.3, 0
    )
    assert fired("kalman-z") == expected_firings(kalman_stats, lambda s: abs(s.zscore) > 1.5, 0)
    assert fired("off") == []
    first = next(alert for alert in alerts if alert.rule == "z-every")
    assert first.pair == PAIR and first.metric == "zscore" and abs(first.value) > 1.5
    assert "z every crossing" in first.message
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


async def test_a_restarted_worker_does_not_fire_a_rule_again_because_it_still_holds(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    """The rule holds on almost every bar: it fires on its first bar, then only on a crossing,
    before and after a restart (whose first act closes the bars due while it was down)."""
    ticks = recorded_ticks()[:20_000]
    sync_redis.hset(keys.ALERT_RULES, "always", rule("nearly always", op="abs>", threshold=0.0))

    def firings() -> list[int]:
        return [int(f["ts"]) for _, f in sync_redis.xrange(keys.ALERTS)]  # type: ignore[misc]

    settings = {"sqlite_path": tmp_path / "none.db", "window": WINDOW}
    async with running_worker(redis_url, **settings) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        publish(sync_redis, ticks)
        assert await eventually(lambda: len(firings()) > 0)
    before = firings()
    async with running_worker(redis_url, **settings) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        await asyncio.sleep(1.5)
        assert int(ctx.health.counters.get("stats_published", 0)) > 0, "nothing was evaluated"
    assert firings() == before


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
