"""Pushed updates (server-sent events, `/push`) in a real headless Chromium against
`python -m services.dashboard` and a private Redis: the channel is cut and refused, and the
page's traces still equal the streams, with no point lost or drawn twice."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.dashboard import ids
from shared import keys
from shared.schemas import Alert, Bar, PairStat
from shared.views import PairView
from testkit.processes import RedisProcess
from tests.dashboard_support import Browser, DashboardProcess, dashboard_process, seed_pair

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)
LIVE = {"mode": "live", "a": "BTCUSDT", "b": "ETHUSDT", "tf": "1s", "window": 60,
        "method": "ols", "k": 2.0}  # fmt: skip


@contextlib.contextmanager
def opened(page: Browser, dashboard: DashboardProcess) -> Iterator[None]:
    page.open(dashboard.url)
    try:
        with page.no_console_errors(allow=("push", "503")):
            page.wait_for(lambda: "Live ·" in page.text("#chart-status"), what="the first render")
            yield
    finally:
        page.open("about:blank")


class BarFeed:
    """Appends the next 1s bar of BTCUSDT every `every_s` in a thread, as the worker would."""

    def __init__(self, client: redis.Redis, every_s: float = 0.15) -> None:
        self.client, self.every_s = client, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        key = keys.bars("1s", "BTCUSDT")
        while not self.stop.wait(self.every_s):
            _, fields = self.client.xrevrange(key, count=1)[0]
            last = Bar.from_fields(fields)
            self.client.xadd(key, dataclasses.replace(last, start=last.start + 1_000).to_fields())

    def __enter__(self) -> BarFeed:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def record_push_status(page: Browser) -> None:
    """Keeps every text the push status line shows from now on (`shown_push_status`): a state
    that lasts about a second (lost, before the EventSource reconnects) could fall between two
    reads of a loaded browser."""
    page.driver.execute_script(
        """
        const line = document.querySelector('#PUSH_STATUS');
        window.testPushStatus = [line.textContent];
        new MutationObserver(() => window.testPushStatus.push(line.textContent))
            .observe(line, {childList: true, characterData: true, subtree: true});
        """.replace("PUSH_STATUS", ids.PUSH_STATUS)
    )


def shown_push_status(page: Browser) -> list[str]:
    return list(page.driver.execute_script("return window.testPushStatus || [];"))


def streamed_starts(client: redis.Redis) -> list[float]:
    return [float(f["start"]) for _, f in client.xrange(keys.bars("1s", "BTCUSDT"))]


def drawn_equal_streamed(page: Browser, client: redis.Redis) -> bool:
    drawn = page.trace_x(0)
    return drawn == streamed_starts(client)


def test_bad_push_requests_are_refused_with_the_reason(
    redis_server: RedisProcess, redis_url: str, tmp_path: Path
) -> None:
    with dashboard_process(redis_server.url, tmp_path) as dashboard:
        cases = {
            "": "the view parameter is missing",
            "view=%7Bnot": "the view parameter is not JSON",
            "view=" + urllib.parse.quote(json.dumps({**LIVE, "method": "magic"})): "not a view",
            "view=" + urllib.parse.quote(json.dumps({**LIVE, "mode": "upload"})): "not a view",
        }
        for query, reason in cases.items():
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{dashboard.url}/push?{query}", timeout=5)
            assert refused.value.code == 400
            assert reason in refused.value.read().decode(), query


def test_a_cut_push_channel_falls_back_to_polling_and_recovers_without_gaps(
    browser: Browser, redis_server: RedisProcess, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    seed_pair(sync_redis, VIEW, 60)
    with dashboard_process(redis_server.url, tmp_path) as dashboard, opened(browser, dashboard):
        browser.wait_for(lambda: browser.text("#push-status") == "Updates pushed", what="push")
        with BarFeed(sync_redis):
            browser.wait_for(lambda: len(browser.trace_x(0)) > 190, what="pushed bars drawn")
            blocked = [c for c in sync_redis.client_list() if c.get("cmd") == "xread"]
            assert blocked, "the page's push stream waits in Redis"
            record_push_status(browser)
            for connection in blocked:
                sync_redis.client_kill_filter(_id=connection["id"])
            browser.wait_for(
                lambda: any(
                    shown.startswith("Push channel lost: polling")
                    for shown in shown_push_status(browser)
                ),
                timeout=5,
                what="the fallback said",
            )
            browser.wait_for(lambda: browser.text("#push-status") == "Updates pushed",
                             what="reconnected")  # fmt: skip
        browser.wait_for(lambda: drawn_equal_streamed(browser, sync_redis), what="every bar once")
        drawn = browser.trace_x(0)
        assert drawn == sorted(set(drawn)) and len(drawn) > 190


def test_a_page_refused_the_push_channel_polls_and_says_so(
    browser: Browser, redis_server: RedisProcess, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    seed_pair(sync_redis, VIEW, 60)
    with dashboard_process(redis_server.url, tmp_path, DASH_PUSH_MAX_CLIENTS="1") as dashboard:
        host, port = dashboard.url.removeprefix("http://").split(":")
        query = urllib.parse.quote(json.dumps(LIVE))
        with socket.create_connection((host, int(port))) as holder:
            holder.sendall(f"GET /push?view={query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert b"200 OK" in holder.recv(4096), "the only push slot is taken"
            with opened(browser, dashboard), BarFeed(sync_redis):
                browser.wait_for(
                    lambda: browser.text("#push-status").startswith("Push refused by the server"),
                    what="the refusal said",
                )
                browser.wait_for(lambda: len(browser.trace_x(0)) > 190, what="polled bars")
            browser_done = streamed_starts(sync_redis)
        assert len(browser_done) > 190


def test_a_fired_alert_reaches_the_feed_through_the_push_channel(
    browser: Browser, redis_server: RedisProcess, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    """The feed polls with the health (here once a minute): the second alert can only arrive
    in time through the page's push channel."""
    seeded = seed_pair(sync_redis, VIEW, 60)
    ts = seeded.stats[-1].ts

    def fire(rule: str) -> None:
        alert = Alert(rule, "BTCUSDT-ETHUSDT", "1s", "zscore", 2.4, 2.0, ts, "stretched")
        sync_redis.xadd(keys.ALERTS, alert.to_fields())

    fire("before-open")
    env = {"HEALTH_INTERVAL_S": "60"}
    with (
        dashboard_process(redis_server.url, tmp_path, **env) as dashboard,
        opened(browser, dashboard),
    ):
        feed = f"#{ids.ALERTS_FEED}"
        browser.wait_for(lambda: "before-open" in browser.text(feed), what="the first read")
        browser.wait_for(lambda: browser.text("#push-status") == "Updates pushed", what="push")
        fire("while-open")
        browser.wait_for(lambda: "while-open" in browser.text(feed), timeout=15, what="pushed")
        assert browser.text(feed).count("before-open") == 1


def seed_statistics(client: redis.Redis, view: PairView, count: int) -> None:
    """`count` statistics entries of `view`, one a second, as the worker would write them."""
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        stat = PairStat(
            ts=1_765_000_000_000 + 1_000 * i, price_a=87_100.0, price_b=2_940.0, alpha=120.0,
            beta=29.6, spread=100.0, zscore=math.sin(i / 50), corr=0.87, spread_mean=20.0,
            spread_std=4.0, window=view.window, n=view.window, method="ols",
        )  # fmt: skip
        pipe.xadd(view.stream_key(60), stat.to_fields())
    pipe.hset(view.latest_key(60), mapping=stat.to_fields())
    pipe.execute()


def test_a_view_whose_full_render_outlasts_the_pushes_between_is_still_drawn(
    browser: Browser, redis_server: RedisProcess, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    """Dash drops the answer of a callback called again before it answers. Bars pushed every
    few milliseconds while a window with 10,000 statistics is read for the first time would
    ask for the chart again and again, each request dropping the one before: the page holds
    pushed news back while the chart callback runs."""
    seed_pair(sync_redis, VIEW, 60)
    wide = PairView("BTCUSDT", "ETHUSDT", "1s", 120)
    seed_statistics(sync_redis, wide, 10_000)
    with dashboard_process(redis_server.url, tmp_path) as dashboard, opened(browser, dashboard):
        browser.wait_for(lambda: browser.text("#push-status") == "Updates pushed", what="push")
        with BarFeed(sync_redis, every_s=0.005):
            browser.type_into("#window", "120")
            browser.wait_for(lambda: "window 120" in browser.text("#chart-status"),
                             what="the wider window drawn while bars are pushed")  # fmt: skip
            browser.wait_for(lambda: browser.trace_lengths()[6] > 1_000, what="its statistics")
