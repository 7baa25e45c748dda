"""The dashboard's reads on a real Redis filled through the shared schemas."""

from __future__ import annotations

import redis

from services.dashboard import actions, data, records
from shared import keys
from shared.health import now_ms
from shared.schemas import Alert, Event, Tick
from shared.views import VIEW_TTL_MS, PairView
from tests.dashboard_support import seed_pair

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)


def tick(symbol: str, trade_id: int) -> Tick:
    return Tick(now_ms(), symbol, "87100.5", "0.01", trade_id, "buy", now_ms())


def test_feeds_report_ticks_added_writer_lag_and_the_latest_connection_event(
    sync_redis: redis.Redis,
) -> None:
    for i in range(5):
        sync_redis.xadd(keys.ticks("BTCUSDT"), tick("BTCUSDT", i).to_fields())
    sync_redis.xgroup_create(keys.ticks("BTCUSDT"), keys.WRITER_GROUP, id="0")
    sync_redis.xreadgroup(keys.WRITER_GROUP, "w1", {keys.ticks("BTCUSDT"): ">"}, count=2)
    for kind in ("connected", "disconnected"):
        event = Event("ingestor", kind, "socket closed" if kind != "connected" else "", now_ms(),
                      "BTCUSDT")  # fmt: skip
        sync_redis.xadd(keys.EVENTS, event.to_fields())
    sync_redis.xadd(keys.EVENTS, Event("writer", "gap", "2 ticks", now_ms()).to_fields())
    health = data.read_health(sync_redis, ["BTCUSDT", "ETHUSDT"])
    btc, eth = health.feeds
    assert (btc.added, btc.writer_lag, btc.state, btc.state_detail) == (
        5, 3, "disconnected", "socket closed"
    )  # fmt: skip
    assert btc.last_tick_ms is not None and now_ms() - btc.last_tick_ms < 10_000
    assert (eth.added, eth.writer_lag, eth.state) == (None, None, "unknown")
    assert [e.kind for e in health.events] == ["gap", "disconnected", "connected"]


def test_recent_entries_and_only_new_entries_after_a_cursor(sync_redis: redis.Redis) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60, bars=50)
    recent = data.read_recent(sync_redis, VIEW, 60, limit=20)
    assert [bar for _, bar in recent.bars_a] == seeded.bars_a[-20:]
    assert [stat for _, stat in recent.stats] == seeded.stats[-20:]
    assert records.latest_stat(recent.latest) == seeded.stats[-1]
    assert recent.tails["a"] == recent.bars_a[-1][0] and recent.tails["alerts"] == records.START

    alert = Alert("z2", "BTCUSDT-ETHUSDT", "1s", "zscore", 2.1, 2.0, seeded.stats[-1].ts)
    sync_redis.xadd(keys.ALERTS, alert.to_fields())
    extra = seeded.bars_a[-1]
    sync_redis.xadd(keys.bars("1s", "BTCUSDT"), extra.to_fields())
    since = data.read_since(sync_redis, VIEW, 60, recent.tails, limit=100)
    assert [bar for _, bar in since.bars_a] == [extra]
    assert since.bars_b == [] and since.stats == []
    assert [a for _, a in since.alerts] == [alert]
    assert since.tails["a"] == since.bars_a[-1][0]
    assert since.newest_ids(recent.tails)["b"] == recent.tails["b"]


def test_malformed_entries_are_skipped_and_counted(sync_redis: redis.Redis) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=10)
    sync_redis.xadd(keys.bars("1s", "BTCUSDT"), {"start": "soon", "close": "1"})
    recent = data.read_recent(sync_redis, VIEW, 60, limit=100)
    assert recent.skipped == 1 and len(recent.bars_a) == 10


def test_what_is_on_screen_is_read_back_exactly(sync_redis: redis.Redis) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60, bars=40)
    recent = data.read_recent(sync_redis, VIEW, 60, limit=15)
    counts = {"a": 15, "b": 15, "stats": 15}
    seed_pair(sync_redis, VIEW, 60, bars=5)  # more entries after what the browser holds
    again = data.read_on_screen(sync_redis, VIEW, 60, recent.tails, counts)
    assert [bar for _, bar in again.bars_a] == seeded.bars_a[-15:]
    assert [stat for _, stat in again.stats] == seeded.stats[-15:]


def test_rules_are_read_with_the_reason_a_stored_one_is_invalid(sync_redis: redis.Redis) -> None:
    rule = {"name": "z", "pair": "BTCUSDT-ETHUSDT", "tf": "1m", "metric": "zscore",
            "op": "abs>", "threshold": 2}  # fmt: skip
    actions.save_rule(sync_redis, "z2", rule)
    sync_redis.hset(keys.ALERT_RULES, "broken", '{"name": ""}')
    rows = {row.rule_id: row for row in data.read_rules(sync_redis)}
    assert rows["z2"].rule is not None and rows["z2"].rule.threshold == 2.0
    assert rows["broken"].rule is None and "name must be" in rows["broken"].error
    assert actions.set_rule_enabled(sync_redis, "z2", False).enabled is False
    assert data.read_rules(sync_redis)[1].rule.enabled is False  # type: ignore[union-attr]
    assert actions.delete_rule(sync_redis, "z2") and not actions.delete_rule(sync_redis, "z2")


def test_a_rule_stored_under_an_id_the_form_refuses_can_still_be_deleted(
    sync_redis: redis.Redis,
) -> None:
    sync_redis.hset(keys.ALERT_RULES, "my rule!", "{not json")
    sync_redis.hset(keys.ALERT_RULES, "x" * 80, "[]")
    assert {row.rule_id for row in data.read_rules(sync_redis)} == {"my rule!", "x" * 80}
    assert actions.delete_rule(sync_redis, "my rule!")
    assert actions.delete_rule(sync_redis, "x" * 80)
    assert sync_redis.hlen(keys.ALERT_RULES) == 0


def test_views_requests_and_uploads_follow_the_contract(sync_redis: redis.Redis) -> None:
    view = PairView("BTCUSDT", "ETHUSDT", "1m", 120, "kalman")
    before = now_ms()
    actions.register_view(sync_redis, view.id)
    score = sync_redis.zscore(keys.ANALYTICS_VIEWS, view.id)
    assert score is not None and before + VIEW_TTL_MS <= score <= now_ms() + VIEW_TTL_MS
    entry = actions.request_adf(sync_redis, view.id)
    [(entry_id, fields)] = sync_redis.xrange(keys.ANALYTICS_REQUESTS)
    assert entry_id == entry and fields["kind"] == "adf" and fields["view"] == view.id
    assert PairView.parse(fields["view"]) == view
    assert actions.load_upload(sync_redis, "0" * 32) is None


def test_rules_are_read_right_when_ids_that_are_not_utf8_decode_alike(
    sync_redis: redis.Redis,
) -> None:
    """Decoding in the client misread such a hash (later ids paired with the wrong values)."""
    raw = redis.Redis(connection_pool=redis.ConnectionPool.from_url(_url(sync_redis)))
    valid = (
        '{"name": "n", "pair": "BTCUSDT-ETHUSDT", "tf": "1m", "metric": "zscore", "op": ">",'
        ' "threshold": 2}'
    )
    for rule_id in (b"r\xfe", b"ok", b"r\xff", b"tf"):  # a small hash keeps insertion order
        raw.hset(keys.ALERT_RULES, rule_id, b"{}" if rule_id.startswith(b"r") else valid)
    rows = {row.rule_id: row for row in data.read_rules(sync_redis)}
    assert rows["ok"].rule is not None and rows["tf"].rule is not None
    assert rows["ok"].raw == rows["tf"].raw == valid
    assert rows["r\ufffd"].rule is None
    raw.close()


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
