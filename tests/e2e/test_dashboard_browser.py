"""The dashboard in a real headless Chromium, served by `python -m services.dashboard`, reading a
private Redis filled through the shared schemas: what the real pipeline (test_dashboard_pipeline.py)
does not show on demand, such as invalid rules, alerts of other timeframes and a Redis outage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from services.dashboard import clientside
from services.dashboard.figures import Extension, Series
from shared import keys
from shared.alert_rules import parse_rule
from shared.schemas import Alert
from shared.views import PairView
from testkit.processes import RedisProcess
from tests.dashboard_support import Browser, DashboardProcess, dashboard_process, seed_pair

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)


@pytest.fixture(scope="module")
def dashboard(
    redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardProcess]:
    with dashboard_process(redis_server.url, tmp_path_factory.mktemp("dash")) as process:
        yield process


@pytest.fixture
def page(browser: Browser, dashboard: DashboardProcess, redis_url: str) -> Iterator[Browser]:
    """A fresh page on an emptied Redis (redis_url flushed it), saved settings forgotten."""
    browser.open(dashboard.url + "/healthz")
    browser.driver.execute_script("window.localStorage.clear(); window.sessionStorage.clear();")
    browser.clear_downloads()
    with browser.no_console_errors():
        yield browser


@contextlib.contextmanager
def leaving_before_stop(page: Browser) -> Iterator[None]:
    """Leave the page, pass or fail, before its dashboard process stops: polls to a stopped
    server are console errors that would hide why the test failed."""
    try:
        yield
    finally:
        page.open("about:blank")


def open_dashboard(page: Browser, dashboard: DashboardProcess) -> None:
    page.open(dashboard.url)
    page.wait_for(lambda: "Live ·" in page.text("#chart-status"), what="the first render")


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
    page.wait_for(lambda: page.texts("#alerts-feed tr")[0].split()[1] == "third",
                  what="the newest alert first")  # fmt: skip
    assert [row.split()[1] for row in page.texts("#alerts-feed tr")] == [
        "third", "second", "z-beyond-1.5"
    ]  # fmt: skip
    assert page.trace_lengths()[7] == 1  # alerts of another timeframe are not marked here
    page.click("[id*='rule-delete']")
    page.wait_for(lambda: not sync_redis.hexists(keys.ALERT_RULES, "z-beyond-1.5"))


def test_a_redis_outage_is_a_banner_not_a_blank_page(page: Browser, tmp_path: Path) -> None:
    own = RedisProcess(tmp_path / "redis").start()
    try:
        seed_pair(redis.Redis.from_url(own.url, decode_responses=True), VIEW, 60, bars=30)
        with dashboard_process(own.url, tmp_path) as dashboard, leaving_before_stop(page):
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
    finally:
        own.stop()


def _rule_button(page: Browser, kind: str, rule_id: str) -> str:
    """The CSS selector of a rule's button (Dash writes pattern ids as sorted JSON)."""
    for element in page.find_all(f"[id*='{kind}']"):
        if f'"rule":"{rule_id}"' in str(element.get_attribute("id")):
            return f"[id='{element.get_attribute('id')}']"
    raise AssertionError(f"no {kind} button for {rule_id!r}")


def test_stored_rules_that_are_invalid_can_be_edited_and_deleted(
    page: Browser, dashboard: DashboardProcess, sync_redis: redis.Redis
) -> None:
    """Rules put in `alert-rules` by hand (redis-cli) that the form would never write: each is
    listed, Edit says what is wrong instead of failing, and Delete removes it."""
    sync_redis.hset(keys.ALERT_RULES, mapping={
        "not-json": "{oops",
        "a-list": "[1, 2]",
        "half": '{"name": "half a rule", "tf": "1m", "threshold": "abc"}',
        "bad id!": '{"name": "x"}',
    })  # fmt: skip
    open_dashboard(page, dashboard)
    page.wait_for(lambda: "bad id!" in page.text("#rules-table"), what="the rules listed")
    page.click(_rule_button(page, "rule-edit", "not-json"))
    page.wait_for(lambda: "rule not-json is not valid JSON" in page.text("#rule-status"))
    page.click(_rule_button(page, "rule-edit", "a-list"))
    page.wait_for(lambda: "rule a-list is a JSON array, not an object" in page.text("#rule-status"))
    page.click(_rule_button(page, "rule-edit", "half"))
    page.wait_for(lambda: "Editing half, which is invalid" in page.text("#rule-status"))
    assert page.find("#rule-name").get_attribute("value") == "half a rule"
    assert page.find("#rule-threshold").get_attribute("value") == "abc"
    for rule_id in ("bad id!", "not-json", "a-list", "half"):
        page.click(_rule_button(page, "rule-delete", rule_id))
        page.wait_for(lambda r=rule_id: not sync_redis.hexists(keys.ALERT_RULES, r), what=rule_id)
        page.wait_for(lambda r=rule_id: f"Deleted rule {r}" in page.text("#rule-status"))
    page.wait_for(lambda: "No alert rules yet" in page.text("#rules-table"))


def test_an_upload_with_blank_lines_before_its_header_is_read(
    page: Browser, dashboard: DashboardProcess, tmp_path: Path
) -> None:
    lines = ["", "  ", "time,symbol,open,high,low,close,volume"]
    for i in range(30):
        ns = (1_765_892_460 + 60 * i) * 1_000_000_000
        lines.append(f"{ns},AAAUSDT,10,13,9,{10 + i % 3},1")
        lines.append(f"{ns},BBBUSDT,20,25,19,{20 + i % 5},2")
    file = tmp_path / "pair.csv"
    file.write_text("\n".join(lines) + "\n")
    open_dashboard(page, dashboard)
    page.upload("#upload", file)
    page.wait_for(lambda: "Loaded AAAUSDT/BBBUSDT: 30 aligned bars" in page.text("#upload-status"))
    page.wait_for(lambda: page.text("#chart-status").startswith("Upload"), what="upload mode")
    assert page.trace_lengths()[0] == 30


def _relayout(page: Browser, update: dict[str, object]) -> None:
    """What a drag-zoom or a double-click does to the chart's time axis."""
    page.driver.execute_script(
        "Plotly.relayout(document.querySelector('#chart .js-plotly-plot'), arguments[0]);", update
    )


def test_zooming_in_draws_every_bar_of_the_range_and_zooming_out_reduces_again(
    page: Browser, redis_server: RedisProcess, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    starts = [bar.start for bar in seed_pair(sync_redis, VIEW, 60).bars_a]
    with (
        dashboard_process(redis_server.url, tmp_path, DASH_SCREEN_POINTS="100") as dashboard,
        leaving_before_stop(page),
    ):
        open_dashboard(page, dashboard)
        page.wait_for(lambda: page.trace_lengths()[0] > 0, what="the price drawn")
        whole = page.trace_x(0)
        assert len(whole) <= 100 < len(starts), "the full render is reduced to the screen"
        lo, hi = starts[50], starts[109]
        assert sum(lo <= x <= hi for x in whole) < 60
        _relayout(page, {"xaxis.range": [lo, hi]})

        def inside() -> list[int]:
            return [int(x) for x in page.trace_x(0) if lo <= x <= hi]

        page.wait_for(lambda: inside() == starts[50:110], what="every bar of the zoomed range")
        assert len(page.trace_x(0)) <= 100
        _relayout(page, {"xaxis.autorange": True})
        page.wait_for(lambda: page.trace_x(0) == whole, what="the reduced view again")


def test_a_live_step_is_drawn_only_onto_what_it_continues_and_the_page_keeps_the_cursor(
    page: Browser, dashboard: DashboardProcess, sync_redis: redis.Redis
) -> None:
    """A step is drawn only onto the figure and the points it was made from (its `base`): not
    while a full render is on its way, not after Pause, not for a view that was replaced, not
    twice. The page moves its cursor on only when it drew the step, and sets it back to what
    is drawn when the two disagree."""
    seed_pair(sync_redis, VIEW, 60)
    open_dashboard(page, dashboard)
    page.wait_for(lambda: page.trace_lengths()[0] > 0, what="the price drawn")
    page.click("#live-toggle")  # no update of the page's own while the test extends
    page.wait_for(lambda: "Paused" in page.text("#chart-status"))
    drawn = page.trace_lengths()
    own: dict[str, Any] = page.driver.execute_script(
        "return document.querySelector('#chart .js-plotly-plot').layout.meta.cursor;"
    )
    assert own and own["render"] and own["ids"]["a"] != "0-0"
    after = int(max(page.trace_x(0))) + 1_000
    points = Extension({0: Series(np.array([after]), np.array([1.0]), None)}, {}).to_store()
    following = {**own, "ids": {**own["ids"], "a": f"{after}-0"}, "points": own["points"] + 1}
    step = {**points, "base": own, "cursor": following}

    def extend(step: dict[str, Any], paused: bool, stored: dict[str, Any]) -> list[Any]:
        return list(page.driver.execute_script(
            f"const out = ({clientside.EXTEND_JS})(arguments[0], arguments[1], arguments[2]);"
            "return out.map(v => v === window.dash_clientside.no_update ? 'unchanged' : v);",
            step, paused, stored,
        ))  # fmt: skip

    untouched = ["unchanged", "unchanged"]
    assert extend({**step, "base": {**own, "key": "another view"}}, False, own) == untouched
    assert extend(step, True, own) == untouched, "after Pause"
    assert extend(step, False, {**own, "render": "on its way"}) == untouched, "a full render"
    assert page.trace_lengths() == drawn
    cursor, _ = extend(step, False, own)
    assert cursor == following, "the page keeps the cursor of what it drew"
    assert page.trace_lengths()[0] == drawn[0] + 1 and page.trace_x(0)[-1] == after
    assert extend(step, False, following) == untouched, "nothing drawn twice"
    assert page.trace_lengths()[0] == drawn[0] + 1
    assert extend(step, False, own)[0] == following, "a store behind the screen is set back"
