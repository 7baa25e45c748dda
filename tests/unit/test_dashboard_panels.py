"""Health banners, tick rates, the statistics panel and the rules table, from plain records."""

from __future__ import annotations

from typing import Any

from dash import html

from services.dashboard.panels import (
    banners,
    health_bar,
    rules_table,
    stats_panel,
    tick_rates,
    verdict,
)
from services.dashboard.records import FeedHealth, PipelineHealth, RuleRow, ServiceHealth
from shared.alert_rules import parse_rule
from shared.schemas import PairStat

NOW = 1_765_892_600_000


def service(name: str, status: str = "ok", age: int | None = 500, **counters: str) -> ServiceHealth:
    return ServiceHealth(name, status, age, dict(counters), 5_000)


def feed(symbol: str, state: str = "connected", last: int | None = NOW - 100) -> FeedHealth:
    return FeedHealth(symbol, 1_000, last, 3, state, "socket closed", NOW - 20_000)


def health(services: list[ServiceHealth], feeds: list[FeedHealth]) -> PipelineHealth:
    return PipelineHealth(True, "", tuple(services), tuple(feeds), (), NOW)


def texts(component: Any) -> str:
    if isinstance(component, list | tuple):
        return " ".join(texts(c) for c in component)
    if isinstance(component, str | int | float):
        return str(component)
    children = getattr(component, "children", None)
    return "" if children is None else texts(children)


def test_all_well_means_no_banner() -> None:
    ok = [service(s) for s in ("ingestor", "writer", "analytics", "dashboard")]
    assert banners(health(ok, [feed("BTCUSDT")])) == []


def test_banners_name_the_stale_stopped_missing_or_degraded_service() -> None:
    services = [
        service("ingestor", age=None, status="missing"),
        service("writer", age=12_000),
        service("analytics", status="stopped", age=300_000),
        service("dashboard", age=None),
    ]
    messages = banners(health(services, []))
    assert messages == [
        "ingestor has never reported: is it running?",
        "writer is stale: no heartbeat for 12 s.",
        "analytics stopped 5 min ago.",
    ]
    assert banners(health([service("writer", "stopping")], [])) == [
        "writer is stopping (finishing its in-flight work)."
    ]
    assert banners(health([service("writer", "degraded")], [])) == [
        "writer reports degraded service."
    ]
    why = service("ingestor", "degraded", problem="BTCUSDT disconnected")
    assert banners(health([why], [])) == [
        "ingestor reports degraded service: BTCUSDT disconnected."
    ]
    failed = banners(health([], [feed("BTCUSDT", "connect_failed")]))
    assert failed[0].startswith("Feed BTCUSDT is connect failed since")


def test_a_backfill_in_progress_is_said_per_symbol() -> None:
    filling = service(
        "ingestor", **{"backfill_waiting:BTCUSDT": "1523", "backfill_waiting:ETHUSDT": "0"}
    )
    assert banners(health([filling], [])) == ["Back-filling 1,523 trade ids of BTCUSDT from REST."]


def test_banners_say_when_a_feed_is_down_or_silent() -> None:
    messages = banners(
        health([], [feed("BTCUSDT", "disconnected"), feed("ETHUSDT", last=NOW - 60_000)])
    )
    assert messages[0].startswith("Feed BTCUSDT is disconnected since 13:43:00 UTC (socket closed)")
    assert messages[1] == "No ETHUSDT tick for 60 s."


def test_redis_down_is_one_clear_banner_and_no_chips() -> None:
    down = PipelineHealth(False, "Connection refused", ())
    chips, status, banner = health_bar(down, {})
    assert chips == [] and status == "Redis: down"
    assert "Redis is unreachable: Connection refused" in texts(banner)


def test_tick_rates_come_from_two_samples() -> None:
    feeds = [feed("BTCUSDT")]
    assert tick_rates(feeds, None, NOW) == {"BTCUSDT": None}
    previous = {"at": NOW - 2_000, "added": {"BTCUSDT": 900}}
    assert tick_rates(feeds, previous, NOW) == {"BTCUSDT": 50.0}


def stat(**overrides: Any) -> PairStat:
    values: dict[str, Any] = {
        "ts": NOW, "price_a": 87_100.5, "price_b": 2_940.25, "alpha": 10.0, "beta": 29.5,
        "spread": 3.5, "zscore": 2.4, "corr": 0.91, "window": 60, "n": 60, "method": "ols",
        "spread_mean": 1.0, "spread_std": 1.0,
    }  # fmt: skip
    values.update(overrides)
    return PairStat(**values)


def test_stats_panel_gives_a_plain_adf_verdict() -> None:
    shown = texts(stats_panel(stat(adf_stat=-3.9, adf_pvalue=0.004, half_life=30.0,
                                   coint_pvalue=0.2), {}, tf="1m", k=2.0))  # fmt: skip
    assert "stationary at 5%" in shown and "p = 0.0040" in shown
    assert "not cointegrated at 5%" in shown
    assert "30.0 bars" in shown and "30.0 min" in shown
    assert "87,100.5 / 2,940.25" in shown and "60 / 60" in shown


def test_stats_panel_keeps_the_last_adf_between_tests() -> None:
    shown = texts(stats_panel(stat(), {"adf_stat": -1.2, "adf_pvalue": 0.6}, tf="1s", k=2.0))
    assert "not stationary at 5%" in shown and "-1.200" in shown
    assert "not computed yet" in texts(stats_panel(stat(), {}, tf="1s", k=2.0))


def test_stats_panel_empty_state_says_what_it_waits_for() -> None:
    shown = texts(stats_panel(None, {}, tf="1s", k=2.0, waiting="Waiting for BTCUSDT-ETHUSDT"))
    assert shown == "Waiting for BTCUSDT-ETHUSDT"


def test_verdicts() -> None:
    assert verdict(0.01) == ("stationary at 5%", "good")
    assert verdict(0.2, "cointegrated") == ("not cointegrated at 5%", "warn")
    assert verdict(None)[0] == "not computed yet"


def test_rules_table_shows_each_rule_and_why_a_stored_rule_is_invalid() -> None:
    good = (
        '{"name": "z", "pair": "BTCUSDT-ETHUSDT", "tf": "1m", "metric": "zscore", '
        '"op": "abs>", "threshold": 2}'
    )
    rows = [
        RuleRow("z2", good, parse_rule(good)),
        RuleRow("bad", "{}", None, "name must be a non-empty text"),
    ]
    table = rules_table(rows, 60)
    assert isinstance(table, html.Table)
    shown = texts(table)
    assert "zscore abs> 2" in shown and "w60 ols" in shown and "Disable" in shown
    assert "invalid rule: name must be a non-empty text" in shown
    assert "No alert rules yet" in texts(rules_table([], 60))


def test_a_synthetic_market_is_labelled_on_the_ingestors_chip() -> None:
    chips = [
        health_bar(PipelineHealth(True, "", (service("ingestor", source=s, ticks="5"),)), {})[0]
        for s in ("synthetic", "binance")
    ]
    assert "SYNTHETIC market" in texts(chips[0])
    assert "SYNTHETIC" not in texts(chips[1])
