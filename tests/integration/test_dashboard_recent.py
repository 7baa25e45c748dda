"""The full render's cache of parsed stream entries agrees with a fresh read, on a real Redis,
whatever happened to the streams between two renders."""

from __future__ import annotations

import dataclasses
import threading
import time

import redis

from services.dashboard import data, prefetch, screen
from services.dashboard.app import build_app
from services.dashboard.recent import RecentEntries
from services.dashboard.records import Snapshot
from services.dashboard.selection import Selection
from shared import keys
from shared.config import load_settings
from shared.schemas import Alert, Bar
from shared.views import PairView
from testkit.dash_requests import chart_request
from testkit.polling import wait_until
from tests.dashboard_support import seed_pair

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)
LIMIT = 50


def live_selection() -> Selection:
    return Selection(mode="live", a=VIEW.a, b=VIEW.b, tf=VIEW.tf, window=60, method="ols", k=2.0)


def fresh(client: redis.Redis) -> Snapshot:
    return data.read_recent(client, VIEW, 60, LIMIT, alert_scan=20)


def cached(recent: RecentEntries, client: redis.Redis) -> Snapshot:
    return recent.read(client, VIEW, 60, LIMIT, alert_scan=20)


def same(left: Snapshot, right: Snapshot) -> None:
    """Equal to the letter: `repr` tells NaN from NaN's absence and 0.0 from -0.0."""
    assert len(left.bars_a) > 0
    for role in ("bars_a", "bars_b", "stats", "alerts"):
        assert repr(getattr(left, role)) == repr(getattr(right, role)), role
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


def test_malformed_entries_are_held_as_gaps_until_they_leave_the_newest(
    sync_redis: redis.Redis,
) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=120)
    btc, bar = keys.bars("1s", "BTCUSDT"), next_bar(sync_redis, "BTCUSDT")
    sync_redis.xadd(btc, {**bar.to_fields(), "close": "x"})
    recent = RecentEntries()
    first = cached(recent, sync_redis)  # read in full, the gap among them
    same(first, fresh(sync_redis))
    assert first.skipped == 1 and len(first.bars_a) == LIMIT - 1
    for count in (3, LIMIT - 10, 9):
        for _ in range(count):
            bar = dataclasses.replace(bar, start=bar.start + 1_000)
            sync_redis.xadd(btc, bar.to_fields())
        sync_redis.xadd(keys.bars("1s", "ETHUSDT"), {"start": "1", "trades": "many"})
        shown = cached(recent, sync_redis)  # continued: the new entries appended, the oldest cut
        same(shown, fresh(sync_redis))
    assert shown.skipped == 3 and len(shown.bars_a) == LIMIT


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


def xrevrange_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_xrevrange", {}).get("calls", 0))


def test_a_view_read_ahead_is_drawn_without_reading_its_streams_again(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=120)
    # An empty stream holds nothing to continue from, so it is read afresh (it costs nothing).
    alert = Alert(rule="r", pair="BTCUSDT-ETHUSDT", tf="1s", metric="zscore", value=2.0,
                  threshold=1.0, ts=1)  # fmt: skip
    sync_redis.xadd(keys.ALERTS, alert.to_fields())
    settings = load_settings(redis_url=redis_url, dash_max_points=100)
    recent = RecentEntries()
    views = prefetch.views_ahead(settings, recent.max_streams)
    assert views[0] == VIEW
    assert len(views) == len(settings.timeframes)
    prefetch.read_ahead(sync_redis, settings, recent, views)
    before = xrevrange_calls(sync_redis)
    shown = screen.live_full(sync_redis, settings, live_selection(), recent)
    assert xrevrange_calls(sync_redis) == before
    afresh = screen.live_full(sync_redis, settings, live_selection())
    assert xrevrange_calls(sync_redis) > before
    for made in (shown, afresh):  # each full render has a token of its own
        assert made.cursor is not None and made.cursor.pop("render")
        assert made.figure["layout"]["meta"]["cursor"].pop("render")
    assert shown.figure["layout"]["meta"]["cursor"] == shown.cursor
    assert shown.figure == afresh.figure
    assert (shown.cursor, shown.status) == (afresh.cursor, afresh.status)
    assert repr(shown.stats) == repr(afresh.stats)


def test_reading_ahead_takes_at_most_half_the_cache_and_the_likeliest_views_first() -> None:
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
    settings = load_settings(redis_url="redis://127.0.0.1:1/0", symbols=symbols)
    views = prefetch.views_ahead(settings, max_streams=48)
    assert len(views) == (48 // 2 - 1) // prefetch.STREAMS_PER_VIEW
    assert views[0] == PairView("BTCUSDT", "ETHUSDT", "1s", settings.window)
    assert len(set(views)) == len(views)
    assert prefetch.views_ahead(settings, max_streams=2) == []


def test_the_read_ahead_thread_fills_the_cache_survives_redis_away_and_stops(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=60)
    for url in (redis_url, "redis://127.0.0.1:1/0"):
        settings = load_settings(redis_url=url, dash_max_points=100)
        recent, stop = RecentEntries(), threading.Event()
        thread = threading.Thread(target=prefetch.keep_read, args=(settings, recent, stop))
        thread.start()
        if url == redis_url:
            assert wait_until(lambda r=recent: len(r) >= 4)
        else:
            time.sleep(prefetch.REFRESH_S * 1.5)
            assert thread.is_alive() and len(recent) == 0
        stop.set()
        thread.join(5.0)
        assert not thread.is_alive()


def test_the_app_renders_through_the_cache_it_is_given(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=120)
    settings = load_settings(redis_url=redis_url, dash_max_points=100)
    recent = RecentEntries()
    http = build_app(settings, recent).server.test_client()
    view = {"mode": "live", "a": VIEW.a, "b": VIEW.b, "tf": VIEW.tf, "window": 60,
            "method": "ols", "k": 2.0, "theme": "dark"}  # fmt: skip
    reply = http.post("/_dash-update-component", json=chart_request(view, None, "view.data", 0))
    assert reply.status_code == 200
    assert len(recent) == 4
    assert recent.read(sync_redis, VIEW, 60, 100).bars_a == fresh_bars(sync_redis)


def fresh_bars(client: redis.Redis) -> list[tuple[str, Bar]]:
    return data.read_recent(client, VIEW, 60, 100).bars_a
