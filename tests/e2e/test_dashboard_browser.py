"""The dashboard in a real headless Chromium, served by `python -m services.dashboard`, reading a
private Redis filled through the shared schemas (the pipeline itself: test_dashboard_pipeline.py).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.dashboard.formatting import iso_utc
from shared import keys
from shared.alert_rules import parse_rule
from shared.schemas import Alert
from shared.views import PairView
from tests.dashboard_support import Browser, DashboardProcess, dashboard_process, seed_pair
from tests.support import RedisProcess

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)


@pytest.fixture(scope="module")
def dashboard(
    redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardProcess]:
    with dashboard_process(redis_server.url, tmp_path_factory.mktemp("dash")) as process:
        yield process


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chromium = Browser(tmp_path_factory.mktemp("downloads"))
    yield chromium
    chromium.quit()


@pytest.fixture
def page(browser: Browser, dashboard: DashboardProcess, redis_url: str) -> Iterator[Browser]:
    """A fresh page on an emptied Redis (redis_url flushed it), saved settings forgotten."""
    browser.open(dashboard.url + "/healthz")
    browser.driver.execute_script("window.localStorage.clear(); window.sessionStorage.clear();")
    browser.clear_downloads()
    browser.collect_console()
    browser.console.clear()
    yield browser
    errors = browser.console_errors()
    assert not errors, f"console errors: {errors}"


def open_dashboard(page: Browser, dashboard: DashboardProcess) -> None:
    page.open(dashboard.url)
    page.wait_for(lambda: "Live ·" in page.text("#chart-status"), what="the first render")


def test_charts_fill_and_keep_updating(
    page: Browser, dashboard: DashboardProcess, sync_redis: redis.Redis
) -> None:
    everything = seed_pair(sync_redis, VIEW, 60)
    sync_redis.flushdb()
    first = seed_pair(sync_redis, VIEW, 60, bars=60)
    stats = len(first.stats)
    open_dashboard(page, dashboard)
    page.wait_for(lambda: page.trace_lengths()[0] == 60, what="60 bars of BTCUSDT")
    assert "Hedge ratio β" in page.text("#stats")
    pipe = sync_redis.pipeline()
    for bar in everything.bars_a[60:80]:
        pipe.xadd(keys.bars("1s", "BTCUSDT"), bar.to_fields())
    for stat in everything.stats[stats : stats + 20]:
        pipe.xadd(VIEW.stream_key(60), stat.to_fields())
    pipe.execute()
    page.wait_for(lambda: page.trace_lengths()[0] == 80, what="20 more bars drawn")
    page.wait_for(lambda: page.trace_lengths()[6] == stats + 20, what="20 more z-scores drawn")
    assert f"80 bars, {stats + 20} statistics on screen" in page.text("#chart-status")


def test_changing_the_window_asks_the_worker_and_shows_its_statistics(
    page: Browser, dashboard: DashboardProcess, sync_redis: redis.Redis
) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=40)
    open_dashboard(page, dashboard)
    page.type_into("#window", "120")
    wanted = PairView("BTCUSDT", "ETHUSDT", "1s", 120)
    page.wait_for(lambda: sync_redis.zscore(keys.ANALYTICS_VIEWS, wanted.id), what="the view")
    page.wait_for(lambda: "window 120" in page.text("#chart-status"), what="the new view")
    assert "Waiting for the analytics worker to serve" in page.text("#chart")
    seed_pair(sync_redis, wanted, 60, bars=40)  # what the worker would publish for the view
    page.wait_for(lambda: "/ 120" in page.text("#stats"), what="statistics of window 120")


def test_alert_rules_are_validated_stored_and_fired_alerts_shown(
    page: Browser, dashboard: DashboardProcess, sync_redis: redis.Redis
) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60, bars=40)
    open_dashboard(page, dashboard)
    page.type_into("#rule-name", "z beyond 1.5", enter=False)
    page.type_into("#rule-threshold", "one and a half", enter=False)
    page.click("#rule-save")
    page.wait_for(lambda: "threshold must be a number" in page.text("#rule-status"))
    page.type_into("#rule-threshold", "1.5", enter=False)
    page.type_into("#rule-conditions", '[{"metric": "price", "op": "<", "threshold": 1}]',
                   enter=False)  # fmt: skip
    page.click("#rule-save")
    page.wait_for(lambda: "conditions[0].metric must be one of" in page.text("#rule-status"))
    page.type_into("#rule-conditions", "", enter=False)
    page.click("#rule-save")
    page.wait_for(lambda: sync_redis.hget(keys.ALERT_RULES, "z-beyond-1.5"), what="the rule")
    rule = parse_rule(str(sync_redis.hget(keys.ALERT_RULES, "z-beyond-1.5")))
    assert (rule.pair, rule.tf, rule.metric, rule.op, rule.threshold) == (
        "BTCUSDT-ETHUSDT", "1s", "zscore", "abs>", 1.5
    )  # fmt: skip
    page.wait_for(lambda: "zscore abs> 1.5" in page.text("#rules-table"))
    page.click("[id*='rule-toggle']")
    page.wait_for(
        lambda: '"enabled":false' in str(sync_redis.hget(keys.ALERT_RULES, "z-beyond-1.5"))
    )

    stat = seeded.stats[-1]
    alert = Alert("z-beyond-1.5", "BTCUSDT-ETHUSDT", "1s", "zscore", 1.9, 1.5, stat.ts, "z up")
    sync_redis.xadd(keys.ALERTS, alert.to_fields())
    page.wait_for(lambda: "z-beyond-1.5" in page.text("#alerts-feed"), what="the feed row")
    page.wait_for(lambda: "Alert z-beyond-1.5" in page.text("#toast"), what="the notification")
    page.wait_for(lambda: page.trace_lengths()[7] == 1, what="the marker on the z-score")
    for name in ("second", "third"):
        later = Alert(name, "BTCUSDT-ETHUSDT", "1m", "corr", 0.1, 0.5, stat.ts, "corr low")
        sync_redis.xadd(keys.ALERTS, later.to_fields())
    page.wait_for(lambda: page.find_all("#alerts-feed tr")[0].text.split()[1] == "third",
                  what="the newest alert first")  # fmt: skip
    assert [row.text.split()[1] for row in page.find_all("#alerts-feed tr")] == [
        "third", "second", "z-beyond-1.5"
    ]  # fmt: skip
    assert page.trace_lengths()[7] == 1  # alerts of another timeframe are not marked here
    page.click("[id*='rule-delete']")
    page.wait_for(lambda: not sync_redis.hexists(keys.ALERT_RULES, "z-beyond-1.5"))


def test_csv_download_has_the_rows_on_screen(
    page: Browser, dashboard: DashboardProcess, sync_redis: redis.Redis
) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60, bars=50)
    open_dashboard(page, dashboard)
    page.click("#export-button")
    path = page.wait_for_download(".csv")
    with path.open() as file:
        rows = list(csv.DictReader(file))
    times = {bar.start for bar in seeded.bars_a} | {bar.start for bar in seeded.bars_b}
    assert len(rows) == len(times | {s.ts for s in seeded.stats})
    by_time = {row["time"]: row for row in rows}
    for bar in seeded.bars_a:
        assert by_time[iso_utc(bar.start)]["BTCUSDT_close"] == repr(bar.close)
    for stat in seeded.stats:
        assert by_time[iso_utc(stat.ts)]["zscore"] == repr(stat.zscore)
    assert path.name.startswith("BTCUSDT-ETHUSDT_1s_")
    assert f"{len(rows):,} rows" in page.text("#export-status")


def test_uploads_report_row_and_column_or_draw_the_file(
    page: Browser, dashboard: DashboardProcess, tmp_path: Path
) -> None:
    open_dashboard(page, dashboard)
    bad = tmp_path / "prices.csv"
    bad.write_text(
        "time,symbol,open,high,low,close,volume\n"
        "2025-12-16T13:41:00Z,BTCUSDT,87100,87120,87090,87110,1.5\n"
        "2025-12-16T13:41:00Z,ETHUSDT,2940,2941,2939,two,12\n"
    )
    page.upload("#upload", bad)
    message = "prices.csv row 2 (line 3), column 'close': 'two' is not a number"
    page.wait_for(lambda: message in page.text("#upload-status"), what="the upload error")
    good = tmp_path / "pair.csv"
    lines = ["time,symbol,open,high,low,close,volume"]
    for i in range(40):
        lines += [f"{1_765_892_460 + 60 * i},AAAUSDT,10,13,9,{10 + i % 3},1",
                  f"{1_765_892_460 + 60 * i},BBBUSDT,20,25,19,{20 + i % 5},2"]  # fmt: skip
    good.write_text("\n".join(lines) + "\n")
    page.upload("#upload", good)
    page.wait_for(
        lambda: "Loaded AAAUSDT/BBBUSDT: 40 aligned bars" in page.text("#upload-status"),
        what="the upload to load",
    )
    page.wait_for(lambda: page.text("#chart-status").startswith("Upload"), what="upload mode")
    page.wait_for(lambda: page.trace_lengths()[0] == 40, what="the uploaded bars")


def test_a_redis_outage_is_a_banner_not_a_blank_page(page: Browser, tmp_path: Path) -> None:
    own = RedisProcess(tmp_path / "redis").start()
    try:
        seed_pair(redis.Redis.from_url(own.url, decode_responses=True), VIEW, 60, bars=30)
        with dashboard_process(own.url, tmp_path) as dashboard:
            open_dashboard(page, dashboard)
            page.wait_for(lambda: page.trace_lengths()[0] == 30)
            page.wait_for(lambda: "analytics has never reported" in page.text("#banner"))
            own.stop()
            page.wait_for(lambda: "Redis is unreachable" in page.text("#banner"), what="banner")
            assert page.trace_lengths()[0] == 30  # the last data stays on screen
            assert "Redis: down" in page.text("#redis-status")
            own.start()
            page.wait_for(lambda: "Redis: ok" in page.text("#redis-status"), what="recovery")
            assert not page.console_errors()
            page.open("about:blank")  # before this dashboard process stops
    finally:
        own.stop()
