"""The dashboard in headless Chromium against the real pipeline: the recorded Binance trades
replayed by the ingestor (SOURCE=replay), stored by the writer, analysed by the analytics worker,
all as processes on a private Redis and SQLite file. Also takes the README's screenshot.
"""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis

from services.dashboard.formatting import short_utc
from shared import keys, pairstats
from shared.alert_rules import parse_rule
from shared.history import History
from shared.schemas import Alert, Bar, Forming, PairStat
from shared.times import iso_ms
from shared.views import PairView
from testkit.polling import wait_until
from testkit.processes import REPO, RedisProcess, service_env, start_service
from testkit.recorded import RECORDED
from tests.dashboard_support import Browser, DashboardProcess, dashboard_process

README_SCREENSHOT = REPO / "docs/dashboard.png"
"""Refreshed by `make screenshot` (UPDATE_SCREENSHOT=1); a plain test run keeps its copy in tmp."""
DEFAULT = PairView("BTCUSDT", "ETHUSDT", "1s", 60)


@dataclass
class Pipeline:
    redis: redis.Redis
    sqlite_path: Path
    dashboard: DashboardProcess
    browser: Browser


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Ingestor (replay at 3x, times shifted to now, looping), writer, analytics, dashboard."""
    base = tmp_path_factory.mktemp("pipeline")
    server = RedisProcess(base / "redis").start()
    sqlite_path = base / "ticks.db"
    common = {"SQLITE_PATH": str(sqlite_path), "LOG_LEVEL": "INFO"}
    env = service_env(
        server.url,
        SOURCE="replay",
        REPLAY_FILE=str(RECORDED),
        REPLAY_SHIFT="true",
        REPLAY_SPEED="3",
        REPLAY_LOOP="true",
        **common,
    )
    processes: list[subprocess.Popen[bytes]] = []
    browser = None
    try:
        for name in ("writer", "analytics", "ingestor"):
            processes.append(start_service(name, env, log=base / f"{name}.log"))
        with dashboard_process(server.url, base, **common) as dashboard:
            browser = Browser(base / "downloads")
            client = redis.Redis.from_url(server.url, decode_responses=True)
            yield Pipeline(client, sqlite_path, dashboard, browser)
            browser.open("about:blank")
            client.close()
    finally:
        if browser is not None:
            browser.quit()
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
        server.stop()


@pytest.fixture
def page(pipeline: Pipeline) -> Iterator[Browser]:
    browser = pipeline.browser
    if "Pairs monitor" not in browser.driver.title:
        browser.open(pipeline.dashboard.url)
    browser.wait_for(lambda: "Live ·" in browser.text("#chart-status"), what="the first render")
    with browser.no_console_errors():
        yield browser


def stat_value(page: Browser, label: str) -> str:
    return page.stats().get(label, "")


def test_charts_fill_and_keep_updating(page: Browser) -> None:
    page.wait_for(lambda: page.trace_lengths()[0] >= 20, timeout=40, what="20 bars of BTCUSDT")
    page.wait_for(lambda: page.trace_lengths()[6] >= 10, timeout=30, what="z-scores")
    before = page.trace_lengths()
    page.wait_for(lambda: page.trace_lengths()[0] >= before[0] + 5, what="more bars")
    page.wait_for(lambda: page.trace_lengths()[6] >= before[6] + 5, what="more statistics")
    assert stat_value(page, "Hedge ratio β") not in ("", "—")
    assert "never reported" not in page.text("#banner")


def test_the_forming_bar_moves_between_closes(page: Browser, pipeline: Pipeline) -> None:
    first = len(page.forming_draws())
    page.wait_for(lambda: len(page.forming_draws()) >= first + 8, what="bars in progress drawn")
    starts = Counter(draw["start"] for draw in page.forming_draws()[first:])
    assert max(starts.values()) >= 2, "a bar in progress is redrawn before it closes"
    assert len(starts) >= 2, "and the next one after the close"
    meta = page.driver.execute_script(
        "return document.querySelector('#chart .js-plotly-plot').layout.meta.forming;"
    )
    a_segment = next(m["trace"] for m in meta if m["field"] == "a_close")

    def drawn_segment() -> list[list[float]]:
        return page.trace_arrays(a_segment, ("x", "y"))  # one draw's, not two

    page.wait_for(lambda: len(drawn_segment()[0]) == 2, what="a segment drawn")
    xs, ys = drawn_segment()
    published = [
        Forming.from_fields(fields)
        for _, fields in pipeline.redis.xrange(DEFAULT.forming_key(DEFAULT.window))
    ]
    assert (xs[1], ys[1]) in {(f.start, f.a_close) for f in published}, "as the worker gave it"
    assert xs[0] < xs[1] and xs[0] in page.trace_x(0), "from the last closed bar drawn"


def test_changing_the_window_changes_the_statistics_shown(
    page: Browser, pipeline: Pipeline
) -> None:
    def bars_in_window() -> int:
        return int(stat_value(page, "Bars in window").split("/")[0].replace(",", "") or 0)

    page.wait_for(lambda: bars_in_window() > 25, timeout=40, what="more bars than the new window")
    page.type_into("#window", "20")
    view = PairView("BTCUSDT", "ETHUSDT", "1s", 20)
    page.wait_for(lambda: pipeline.redis.xlen(view.stream_key(60)) > 0, timeout=30,
                  what="the worker serving window 20")  # fmt: skip
    page.wait_for(lambda: stat_value(page, "Bars in window") == "20 / 20", what="window 20")
    page.wait_for(lambda: page.trace_lengths()[6] > 0, what="window-20 z-scores drawn")
    latest = PairStat.from_fields(pipeline.redis.hgetall(view.latest_key(60)))
    default = PairStat.from_fields(pipeline.redis.hgetall(DEFAULT.latest_key(60)))
    assert latest.window == 20 and default.window == 60 and latest.beta != default.beta
    page.type_into("#window", "60")
    page.wait_for(lambda: stat_value(page, "Bars in window").endswith("/ 60"), what="back to 60")


def test_an_alert_rule_created_in_the_page_fires_and_appears_in_the_feed(
    page: Browser, pipeline: Pipeline, tmp_path: Path
) -> None:
    page.type_into("#rule-name", "pipeline z", enter=False)
    page.type_into("#rule-threshold", "0.2", enter=False)
    page.type_into("#rule-cooldown", "0", enter=False)
    page.click("#rule-save")
    page.wait_for(lambda: "Saved rule pipeline-z" in page.text("#rule-status"), what="saved")
    rule = parse_rule(str(pipeline.redis.hget(keys.ALERT_RULES, "pipeline-z")))
    assert (rule.pair, rule.tf, rule.metric, rule.op, rule.threshold, rule.cooldown_s) == (
        "BTCUSDT-ETHUSDT", "1s", "zscore", "abs>", 0.2, 0.0
    )  # fmt: skip
    page.wait_for(lambda: "pipeline-z" in page.text("#alerts-feed"), timeout=60, what="a firing")
    page.wait_for(lambda: "Alert pipeline-z" in page.text("#toast"), what="the notification")
    page.wait_for(lambda: page.trace_lengths()[7] >= 1, what="a marker on the z-score")
    fired = [Alert.from_fields(f) for _, f in pipeline.redis.xrange(keys.ALERTS)]
    assert any(a.rule == "pipeline-z" and abs(a.value) > 0.2 for a in fired)
    page.driver.execute_script("window.scrollTo(0, 0);")
    shot = (
        README_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "dash.png"
    )
    page.screenshot(shot)
    assert shot.stat().st_size > 50_000, "the screenshot should show a filled dashboard"


def test_the_csv_download_has_the_rows_on_screen(page: Browser, pipeline: Pipeline) -> None:
    page.click("#live-toggle")  # pause, so the screen and the file hold the same bars
    page.wait_for(lambda: "Paused" in page.text("#chart-status"))
    lengths = page.trace_lengths()
    drawn_a = [iso_ms(int(x)) for x in page.trace_x(0)]
    page.clear_downloads()
    page.click("#export-button")
    path = page.wait_for_download(".csv")
    with path.open() as file:
        rows = list(csv.DictReader(file))
    page.click("#live-toggle")
    by_time = {row["time"]: row for row in rows}
    bars_a = [Bar.from_fields(f) for _, f in pipeline.redis.xrange(keys.bars("1s", "BTCUSDT"))]
    stats = [PairStat.from_fields(f) for _, f in pipeline.redis.xrange(DEFAULT.stream_key(60))]
    shown_a = [row for row in rows if row["BTCUSDT_close"]]
    shown_stats = [row for row in rows if row["zscore"]]
    assert drawn_a == sorted(set(drawn_a)), "each bar is drawn once, in order"
    assert [row["time"] for row in shown_a] == drawn_a
    assert len(shown_a) == lengths[0] and len(shown_stats) == lengths[6]
    assert len([row for row in rows if row["ETHUSDT_close"]]) == lengths[1]
    # The newest bars up to the last one on screen (the pipeline went on meanwhile).
    last_a = max(row["time"] for row in shown_a)
    on_screen_a = [bar for bar in bars_a if iso_ms(bar.start) <= last_a][-lengths[0] :]
    assert [iso_ms(bar.start) for bar in on_screen_a] == [row["time"] for row in shown_a]
    for bar in on_screen_a:
        row = by_time[iso_ms(bar.start)]
        assert (row["BTCUSDT_close"], row["BTCUSDT_volume"]) == (repr(bar.close), repr(bar.volume))
    last_stat = max(row["time"] for row in shown_stats)
    on_screen_stats = [s for s in stats if iso_ms(s.ts) <= last_stat][-lengths[6] :]
    assert [iso_ms(s.ts) for s in on_screen_stats] == [row["time"] for row in shown_stats]
    for stat in on_screen_stats:
        assert by_time[iso_ms(stat.ts)]["zscore"] == repr(stat.zscore)
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)


def test_history_reads_what_the_writer_stored(page: Browser, pipeline: Pipeline) -> None:
    history = History(pipeline.sqlite_path)
    span = history.span("BTCUSDT")
    assert span is not None
    page.click("#mode input[value='history']")
    # Typed times win over the preset. Replayed at 3x with times shifted to the start, the ticks
    # run ahead of the clock, so the end is typed too.
    end = span[1] // 1000 * 1000 + 2000
    page.type_into("#history-from", short_utc(span[0]), enter=True)
    page.type_into("#history-to", short_utc(end), enter=True)
    page.click("#history-load")
    page.wait_for(lambda: page.text("#chart-status").startswith("History"), what="history mode")

    def typed_range_drawn() -> bool:
        """Every stored bar of the typed range (the writer keeps storing). Each Enter loads a
        range: the first, up to the preset's end, draws fewer bars (the ticks run ahead)."""
        stored = history.bars("BTCUSDT", "1s", span[0] // 1000 * 1000, end)
        return len(stored) >= 20 and len(stored) - 5 <= page.trace_lengths()[0] <= len(stored) + 5

    page.wait_for(typed_range_drawn, what="the stored bars of the typed range drawn")
    assert page.trace_lengths()[6] > 0  # statistics by shared/pairstats
    history.close()
    page.click("#mode input[value='live']")
    page.wait_for(lambda: page.text("#chart-status").startswith("Live"), what="live again")


def test_uploads_use_the_same_statistics_and_name_a_bad_cell(page: Browser, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,symbol,open,high,low,close,volume\n"
                   "2025-12-16T13:41:00Z,BTCUSDT,87100,87120,87090,87110,1.5\n"
                   "2025-12-16T13:41:00Z,ETHUSDT,2940,2941,2939,oops,12\n")  # fmt: skip
    page.upload("#upload", bad)
    message = "bad.csv row 2 (line 3), column 'close': 'oops' is not a number"
    page.wait_for(lambda: message in page.text("#upload-status"), what="the upload error")

    rng = np.random.default_rng(11)
    b = 2_940 * np.exp(np.cumsum(rng.normal(0, 1e-3, 120)))
    a = 30 * b + rng.normal(0, 20, 120) + 500
    lines = ["time,symbol,open,high,low,close,volume"]
    for i in range(120):
        t = iso_ms(1_765_892_460_000 + 60_000 * i)
        lines += [f"{t},AAAUSDT,{a[i]},{a[i] + 5},{a[i] - 5},{a[i]},1",
                  f"{t},BBBUSDT,{b[i]},{b[i] + 1},{b[i] - 1},{b[i]},2"]  # fmt: skip
    good = tmp_path / "pair.csv"
    good.write_text("\n".join(lines) + "\n")
    page.upload("#upload", good)
    page.wait_for(lambda: "Loaded AAAUSDT/BBBUSDT: 120 aligned bars" in page.text("#upload-status"))
    page.wait_for(lambda: page.text("#chart-status").startswith("Upload"), what="upload mode")
    times = [1_765_892_460_000 + 60_000 * i for i in range(120)]
    expected = pairstats.pair_stats(times, [float(f"{x}") for x in a], list(b), window=60)
    page.wait_for(lambda: page.trace_lengths()[6] == len(expected), what="upload statistics")
    assert stat_value(page, "Hedge ratio β") == f"{expected[-1].beta:,.4f}"
    page.click("#mode input[value='live']")
    page.wait_for(lambda: page.text("#chart-status").startswith("Live"), what="live again")
    assert wait_until(lambda: page.trace_lengths()[0] > 0, within=10)
