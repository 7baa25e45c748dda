"""Bar → screen in headless Chromium: `python -m services.dashboard` on a private Redis holding
10,000 1s bars per leg, the page open, then one new bar of the first leg every 250 ms.

The page reports its own timings: a hook on `plotly_afterplot` records when the newest x of the
price trace first appears, against the wall clock of the XADD that added it (same machine).
Measured with updates pushed (server-sent events) and with push off (polling every
`DASH_UPDATE_MS`). When polling, an update can bring two bars; only the last of each is timed.

Each redraw of a live update is timed by the page too (`window.pairsTimings.redraw`, from the
call to `Plotly.extendTraces` to the drawn traces).

Full renders: the page reloaded `RENDERS` times, with 10,000 1s bars per leg on screen (Live)
and with a History range of 100,000 (a SQLite file of that many 1s bars per leg). From the
browser's resource timing of the response that carries the figure: the server's time (request
sent → first byte, the callback and its compression), the transfer, and the bytes on the wire
and decoded; from a `plotly_afterplot` hook injected before the page's own scripts: the
browser's time, from the response's last byte to the figure drawn.

Trade → screen of the bar in progress runs the real pipeline instead: the ingestor replaying the
recorded trades (times shifted to now, `REPLAY_SPEED`), the analytics worker and the dashboard.
The page records each draw of the bar in progress (`clientside.FORMING_JS`) against the receive
time (`recv_ts`, stamped by the ingestor) of the newest trade in it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.bench_dashboard import T0, fill_sqlite, fill_streams
from bench.harness import private_redis
from services.dashboard import ids
from services.dashboard.formatting import short_utc
from shared import keys
from shared.schemas import Bar
from testkit.browser import Browser, dashboard_process
from testkit.processes import service_env, start_service
from testkit.recorded import RECORDED

BARS = 60
EVERY_S = 0.25
SYMBOL = "BTCUSDT"
FORMING_S = 30
REPLAY_SPEED = "1"
HOOK = """
window.drawnAt = {};
const gd = document.querySelector('#chart .js-plotly-plot');
gd.on('plotly_afterplot', () => {
    const x = gd.data[0].x;
    if (!x || typeof x.bdata === 'string' || !x.length) { return; }
    const last = x[x.length - 1];
    if (!(last in window.drawnAt)) {
        window.drawnAt[last] = performance.timeOrigin + performance.now();
    }
});
"""


def live_shown(page: Browser) -> Callable[[], bool]:
    return lambda: (
        "Live ·" in page.text("#chart-status") and "10,000 bars" in page.text("#chart-status")
    )


def _measured(client: redis.Redis, page: Browser, url: str) -> list[float]:
    page.open(url)
    page.wait_for(lambda: "Live ·" in page.text("#chart-status"), timeout=60)
    time.sleep(2)
    page.driver.execute_script(HOOK)
    key = keys.bars("1s", SYMBOL)
    newest: Any = client.xrevrange(key, count=1)
    last = Bar.from_fields(newest[0][1])
    start, sent = last.start, {}
    for _ in range(BARS):
        start += 1_000
        sent[start] = time.time() * 1000
        client.xadd(key, dataclasses.replace(last, start=start).to_fields())
        time.sleep(EVERY_S)
    time.sleep(2)
    drawn: dict[str, float] = page.driver.execute_script("return window.drawnAt")
    return [drawn[str(k)] - v for k, v in sent.items() if str(k) in drawn]


AFTERPLOT_HOOK = """
window.afterplots = [];
const watch = () => {
    const gd = document.querySelector('#chart .js-plotly-plot');
    if (!gd || !gd.on) { setTimeout(watch, 5); return; }
    gd.on('plotly_afterplot', () => window.afterplots.push(performance.now()));
};
document.addEventListener('DOMContentLoaded', watch);
"""
RENDER_TIMINGS = """
const calls = performance.getEntriesByType('resource')
    .filter(e => e.name.includes('_dash-update-component'))
    .map(e => ({start: e.requestStart, first_byte: e.responseStart, end: e.responseEnd,
                wire: e.transferSize, decoded: e.decodedBodySize}));
return {calls: calls, afterplots: window.afterplots || []};
"""
RENDERS = 6
HISTORY_BARS = 100_000


def _full_render(page: Browser) -> dict[str, float]:
    """The figure's response (the largest callback answer) and the first draw after it."""
    timings: dict[str, Any] = page.driver.execute_script(RENDER_TIMINGS)
    figure = max(timings["calls"], key=lambda call: call["decoded"])
    drawn = min(at for at in timings["afterplots"] if at >= figure["end"])
    return {
        "server_ms": figure["first_byte"] - figure["start"],
        "transfer_ms": figure["end"] - figure["first_byte"],
        "browser_ms": drawn - figure["end"],
        "total_ms": drawn - figure["start"],
        "wire_bytes": figure["wire"],
        "decoded_bytes": figure["decoded"],
    }


def _full_renders(page: Browser, url: str, shown: Callable[[], bool]) -> list[dict[str, float]]:
    page.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": AFTERPLOT_HOOK})
    samples = []
    for _ in range(RENDERS):
        page.open(url)
        page.wait_for(shown, timeout=60)
        time.sleep(1.5)
        samples.append(_full_render(page))
    return samples


def _history_renders(page: Browser, url: str) -> list[dict[str, float]]:
    def shown() -> bool:
        if "History ·" not in page.text("#chart-status"):
            if "History" not in page.text("#chart-status"):
                page.click(f"#{ids.MODE} input[value='history']")
                page.type_into(f"#{ids.HISTORY_FROM}", short_utc(T0), enter=False)
                end = T0 + HISTORY_BARS * 1000
                page.type_into(f"#{ids.HISTORY_TO}", short_utc(end), enter=False)
                page.click(f"#{ids.HISTORY_LOAD}")
            return False
        return f"{HISTORY_BARS:,} bars" in page.text("#chart-status")

    return _full_renders(page, url, shown)


def _render_figures(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"renders": len(samples)}
    for name in ("server_ms", "transfer_ms", "browser_ms", "total_ms"):
        out[name] = _figures([sample[name] for sample in samples])
    out["wire_bytes"] = int(np.median([sample["wire_bytes"] for sample in samples]))
    out["decoded_bytes"] = int(np.median([sample["decoded_bytes"] for sample in samples]))
    return out


def _forming_latency(url: str, directory: Path) -> list[float]:
    """Trade received by the ingestor → its price drawn, for each draw of the bar in progress."""
    env = service_env(
        url, SOURCE="replay", REPLAY_FILE=str(RECORDED), REPLAY_SHIFT="true",
        REPLAY_SPEED=REPLAY_SPEED, REPLAY_LOOP="true", SQLITE_PATH=str(directory / "ticks.db"),
    )  # fmt: skip
    processes = [start_service(name, env) for name in ("analytics", "ingestor")]
    try:
        with dashboard_process(url, directory, SQLITE_PATH=str(directory / "ticks.db")) as dash:
            page = Browser(directory / "downloads-forming")
            try:
                page.open(dash.url)
                page.wait_for(lambda: "Live ·" in page.text("#chart-status"), timeout=60)
                page.wait_for(lambda: len(page.forming_draws()) > 4, timeout=60)
                first = len(page.forming_draws())
                time.sleep(FORMING_S)
                draws = page.forming_draws()[first:]
            finally:
                page.quit()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)
    return [float(draw["drawn"] - draw["recv_ts"]) for draw in draws]


def _figures(samples: list[float]) -> dict[str, Any]:
    values = np.asarray(samples)
    p50, p95, p99 = (round(float(v), 1) for v in np.percentile(values, [50, 95, 99]))
    return {"timed": len(samples), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def _redraws(page: Browser) -> list[float]:
    timings: dict[str, Any] = page.driver.execute_script("return window.pairsTimings || {}")
    return [float(ms) for ms in timings.get("redraw", [])]


def run() -> dict[str, Any]:
    results: dict[str, Any] = {"bars": BARS, "every_s": EVERY_S, "stream_entries": 10_000}
    with (
        tempfile.TemporaryDirectory(prefix="bench-browser-") as directory,
        private_redis() as server,
    ):
        client = redis.Redis.from_url(server.url, decode_responses=True)
        fill_streams(client, 10_000)
        for name, push in (("pushed", "32"), ("polled", "0")):
            with dashboard_process(
                server.url, Path(directory), DASH_PUSH_MAX_CLIENTS=push
            ) as dashboard:
                page = Browser(Path(directory) / f"downloads-{name}")
                try:
                    results[name] = _figures(_measured(client, page, dashboard.url))
                    results[f"redraw_{name}"] = _figures(_redraws(page))
                    if push != "0":
                        renders = _full_renders(page, dashboard.url, live_shown(page))
                        results["full_render_10k"] = _render_figures(renders)
                finally:
                    page.quit()
            print(f"   bar → screen, {name}: {results[name]}", flush=True)
            print(f"   redraw of a live update, {name}: {results[f'redraw_{name}']}", flush=True)
        print(f"   full render, 10k bars live: {results['full_render_10k']}", flush=True)
        sqlite_path = Path(directory) / "history.db"
        fill_sqlite(sqlite_path, HISTORY_BARS, 2)
        with dashboard_process(server.url, Path(directory), SQLITE_PATH=str(sqlite_path)) as dash:
            page = Browser(Path(directory) / "downloads-history")
            try:
                results["full_render_100k_history"] = _render_figures(
                    _history_renders(page, dash.url)
                )
            finally:
                page.quit()
        print(f"   full render, 100k bars history: {results['full_render_100k_history']}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-forming-") as directory,
        private_redis() as server,
    ):
        forming = _figures(_forming_latency(server.url, Path(directory)))
        results["forming"] = {**forming, "seconds": FORMING_S, "replay_speed": REPLAY_SPEED}
        print(f"   trade → screen, bar in progress: {results['forming']}", flush=True)
    return results
