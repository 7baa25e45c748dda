"""The full render's cache of parsed stream entries agrees with a fresh read, on a real Redis,
whatever happened to the streams between two renders."""

from __future__ import annotations

import dataclasses

import redis

from services.dashboard import data
from services.dashboard.recent import RecentEntries
from services.dashboard.records import Snapshot
from shared import keys
from shared.schemas import Alert, Bar
from shared.views import PairView
from tests.dashboard_support import seed_pair

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)
LIMIT = 50


def fresh(client: redis.Redis) -> Snapshot:
    return data.read_recent(client, VIEW, 60, LIMIT, alert_scan=20)


def cached(recent: RecentEntries, client: redis.Redis) -> Snapshot:
    return recent.read(client, VIEW, 60, LIMIT, alert_scan=20)


def same(left: Snapshot, right: Snapshot) -> None:
    assert len(left.bars_a) > 0
    assert left.bars_a == right.bars_a
    assert left.bars_b == right.bars_b
    assert left.stats == right.stats
    assert left.alerts == right.alerts
    assert left.latest == right.latest
    assert left.tails == right.tails
    assert left.skipped == right.skipped


def next_bar(client: redis.Redis, symbol: str) -> Bar:
    _, fields = client.xrevrange(keys.bars("1s", symbol), count=1)[0]
    return dataclasses.replace(Bar.from_fields(fields), start=int(fields["start"]) + 1_000)


def test_new_entries_are_read_after_what_is_held(sync_redis: redis.Redis) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=120)
    recent = RecentEntries()
    same(cached(recent, sync_redis), fresh(sync_redis))
    for _ in range(7):
        sync_redis.xadd(keys.bars("1s", "BTCUSDT"), next_bar(sync_redis, "BTCUSDT").to_fields())
    alert = Alert(rule="r", pair="BTCUSDT-ETHUSDT", tf="1s", metric="zscore", value=2.0,
                  threshold=1.0, ts=1)  # fmt: skip
    sync_redis.xadd(keys.ALERTS, alert.to_fields())
    sync_redis.xadd(keys.bars("1s", "ETHUSDT"), {"start": "not a number"})
    shown = cached(recent, sync_redis)
    same(shown, fresh(sync_redis))
    assert shown.skipped == 1 and len(shown.alerts) == 1


def test_a_stream_reset_or_trimmed_is_read_again(sync_redis: redis.Redis) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=120)
    recent = RecentEntries()
    first = cached(recent, sync_redis)
    # Rewritten from scratch (what the analytics rebuild does): new ids, other values.
    stats = sync_redis.xrange(VIEW.stream_key(60))
    sync_redis.delete(VIEW.stream_key(60))
    for _, fields in stats[:30]:
        sync_redis.xadd(VIEW.stream_key(60), {**fields, "zscore": "0.5"})
    # Trimmed at the old end past what is held.
    sync_redis.xtrim(keys.bars("1s", "BTCUSDT"), maxlen=LIMIT - 10, approximate=False)
    again = cached(recent, sync_redis)
    same(again, fresh(sync_redis))
    assert again.stats != first.stats and len(again.bars_a) == LIMIT - 10


def test_more_new_entries_than_the_limit_replace_what_is_held(sync_redis: redis.Redis) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=40)
    recent = RecentEntries()
    cached(recent, sync_redis)
    for _ in range(LIMIT + 5):
        sync_redis.xadd(keys.bars("1s", "BTCUSDT"), next_bar(sync_redis, "BTCUSDT").to_fields())
    same(cached(recent, sync_redis), fresh(sync_redis))


def test_the_cache_holds_a_bounded_number_of_streams(sync_redis: redis.Redis) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=60)
    recent = RecentEntries(max_streams=4)
    for limit in (10, 20, 30):
        shown = recent.read(sync_redis, VIEW, 60, limit, alert_scan=5)
        assert len(shown.bars_a) == limit
    assert len(recent) <= 4
