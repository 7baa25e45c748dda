"""The screener in headless Chromium on `make demo-market`: the settings that target passes
(read from `make -n demo-market`), the four services as processes on a private Redis and SQLite
file. Every pair is listed with the worker's values, the pairs of a group top the table sorted by
cointegration p, and a click opens the pair in Live."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis

from shared.config import load_settings
from shared.schemas import PairStat
from shared.views import PairView
from testkit.processes import REPO, RedisProcess, service_env, start_service
from tests.dashboard_support import Browser, DashboardProcess, dashboard_process

SCREENSHOT = REPO / "docs/screener.png"
"""Refreshed by `make screenshot` (UPDATE_SCREENSHOT=1); a plain test run keeps its copy in tmp."""
PRIVATE = ("REDIS_URL", "SQLITE_PATH")
"""What the test keeps to itself: its own Redis and tick database."""


def demo_market_settings() -> dict[str, str]:
    """The variables `make demo-market` sets, as it prints them (`make -n`)."""
    printed = subprocess.run(
        ["make", "-n", "--no-print-directory", "demo-market"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = printed.replace("\\\n", " ").splitlines()
    command = next((line for line in lines if line.startswith("make up ")), None)
    assert command is not None, printed[:500]
    words = shlex.split(command)
    pairs = (word.split("=", 1) for word in words[2:] if "=" in word)
    return {name: value for name, value in pairs if name not in PRIVATE}


@dataclass
class Market:
    redis: redis.Redis
    dashboard: DashboardProcess
    browser: Browser
    analytics: subprocess.Popen[bytes]
    settings: dict[str, str]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    base = tmp_path_factory.mktemp("market")
    chosen = demo_market_settings()
    server = RedisProcess(base / "redis").start()
    env = {**chosen, "SQLITE_PATH": str(base / "market.db"), "LOG_LEVEL": "INFO"}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    browser = None
    try:
        for name in ("writer", "analytics", "ingestor"):
            processes[name] = start_service(
                name, service_env(server.url, **env), log=base / f"{name}.log"
            )
        with dashboard_process(server.url, base, **env) as dashboard:
            browser = Browser(base / "downloads")
            client = redis.Redis.from_url(server.url, decode_responses=True)
            yield Market(client, dashboard, browser, processes["analytics"], chosen)
            client.close()
    finally:
        if browser is not None:
            browser.quit()
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
        server.stop()


def shown_rows(page: Browser) -> list[dict[str, str]]:
    """The table's rows as the page shows them, in the order shown (minus signs as `-`)."""
    rows = page.driver.execute_script(
        """
        return [...document.querySelectorAll('#screener-table tr')].map(tr => Object.fromEntries(
            [...tr.querySelectorAll('td[data-dash-column]')]
                .map(td => [td.dataset.dashColumn, td.textContent.replace('\u2212', '-')])));
        """
    )
    return [row for row in rows if row]


def shown(value: float, digits: int) -> str:
    """A value as the table formats it (d3's `,.Nf`: a value that rounds to zero has no sign)."""
    text = f"{value:,.{digits}f}"
    return text.lstrip("-") if float(text.replace(",", "")) == 0 else text


def test_the_screener_lists_every_pair_with_the_workers_values_and_opens_one(
    market: Market, tmp_path: Path
) -> None:
    settings = load_settings(**{k.lower(): v for k, v in market.settings.items()})
    legs = settings.pair_legs
    groups = settings.market_groups
    assert len(settings.symbols) == 12 and len(legs) == 66
    page = market.browser
    page.open(market.dashboard.url)
    with page.no_console_errors():
        page.wait_for(lambda: "66 of 66 pairs" in page.text("#screener-status"), timeout=60,
                      what="every pair listed")  # fmt: skip
        window = str(settings.window)

        def filled() -> bool:
            rows = shown_rows(page)
            return len(rows) == 66 and all(
                r["bars"] == window and r["coint_pvalue"] not in ("", "-") for r in rows
            )

        page.wait_for(filled, timeout=150, what="full windows and cointegration tests, every pair")
        shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "s.png"
        page.screenshot(shot)
        assert shot.stat().st_size > 50_000, "the screenshot should show a filled screener"
        market.analytics.terminate()  # the worker's values stop moving; the page shows the last
        market.analytics.wait(timeout=15)
        page.wait_for(lambda: shown_rows(page) == shown_rows(page), what="the table at rest")
        rows = shown_rows(page)
        for row in rows:
            a, b = row["pair"].split(" / ")
            view = PairView(a, b, settings.timeframes[0], settings.window)
            latest = PairStat.from_fields(market.redis.hgetall(view.latest_key(settings.window)))
            expected = [shown(latest.zscore, 2), shown(latest.beta, 4), shown(latest.alpha, 4)]
            expected += [shown(latest.corr, 3), shown(latest.spread_std, 4), str(latest.n)]
            got = [row[c] for c in ("zscore", "beta", "alpha", "corr", "spread_std", "bars")]
            assert got == expected, row["pair"]
        group_of = {symbol: g for g, group in enumerate(groups) for symbol in group}
        inside = [group_of[a] == group_of[b] for a, b in (r["pair"].split(" / ") for r in rows)]
        in_groups = sum(len(list(itertools.combinations(g, 2))) for g in groups)
        assert in_groups == 12
        # Over a 60-bar window two independent walks can look cointegrated now and then, so the
        # top is not all in-group; by chance alone about 2 of the top 12 would be.
        top = [r["pair"] for r in rows[:in_groups]]
        assert sum(inside[:in_groups]) >= in_groups // 2, top
        pvalues = [float(r["coint_pvalue"]) for r in rows]
        within = float(np.median([p for p, i in zip(pvalues, inside, strict=True) if i]))
        across = float(np.median([p for p, i in zip(pvalues, inside, strict=True) if not i]))
        assert within * 10 <= across and within < 0.05, (within, across)
        page.clear_downloads()
        page.click("#screener-export")
        exported = list(csv.DictReader(io.StringIO(page.wait_for_download().read_text())))
        assert sorted(r["pair"] for r in exported) == sorted(f"{a}-{b}" for a, b in legs)
        for line in exported:  # full precision: the values the table shows, rounded
            a, b = line["pair"].split("-")
            view = PairView(a, b, settings.timeframes[0], settings.window)
            latest = PairStat.from_fields(market.redis.hgetall(view.latest_key(settings.window)))
            assert float(line["zscore"]) == latest.zscore and float(line["beta"]) == latest.beta
            assert line["as_of"].endswith("Z") and "T" in line["as_of"]
        page.click("#screener-conditions input[value='cointegrated']")
        page.wait_for(lambda: 0 < len(shown_rows(page)) < 66, what="the cointegrated pairs only")
        assert all(float(r["coint_pvalue"]) <= 0.05 for r in shown_rows(page))  # shown rounded
        page.click("#screener-conditions input[value='cointegrated']")
        page.wait_for(lambda: len(shown_rows(page)) == 66, what="every pair again")
        target = rows[3]["pair"]
        cell = page.driver.execute_script(
            "return [...document.querySelectorAll(\"#screener-table td[data-dash-column='pair']\")]"
            ".find(td => td.textContent === arguments[0]);",
            target,
        )
        page.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", cell)
        cell.click()
        a, b = target.split(" / ")
        page.wait_for(lambda: f"Live · {a}/{b}" in page.text("#chart-status"), timeout=20,
                      what=f"{target} opened in Live")  # fmt: skip
        assert page.driver.find_element("css selector", "#screener-area").is_displayed() is False
