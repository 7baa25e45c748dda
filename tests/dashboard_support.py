"""Dashboard test helpers: contract-level Redis fixtures built from the recorded trades, the
dashboard as a real process, and a headless Chromium (Debian's chromium + chromedriver)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from shared import keys
from shared.schemas import Bar, PairStat
from shared.views import PairView
from testkit.polling import wait_until
from testkit.processes import free_port, service_env, start_service
from testkit.recorded import market_trades

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--disable-extensions", "--disable-default-apps", "--mute-audio",
)  # fmt: skip


# Contract-level data: real recorded trades -> bars -> pair statistics ------------------------


def recorded_bars(symbol: str, tf_ms: int = 1_000) -> list[Bar]:
    """Bars of one symbol from the recorded trades (test fixture, not the worker's code)."""
    rows = [t for t in market_trades() if t.symbol.upper() == symbol]
    frame = pd.DataFrame(
        {
            "ts": [t.ts for t in rows],
            "price": [float(t.price) for t in rows],
            "size": [float(t.size) for t in rows],
        }
    )
    frame["start"] = frame["ts"] // tf_ms * tf_ms
    frame["notional"] = frame["price"] * frame["size"]
    grouped = frame.groupby("start")
    out = grouped.agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"),
        close=("price", "last"), volume=("size", "sum"), notional=("notional", "sum"),
        trades=("price", "count"),
    ).reset_index()  # fmt: skip
    return [
        Bar(int(r.start), float(r.open), float(r.high), float(r.low), float(r.close),
            float(r.volume), float(r.notional / r.volume), int(r.trades))
        for r in out.itertuples(index=False)
    ]  # fmt: skip


def rolling_stats(bars_a: Sequence[Bar], bars_b: Sequence[Bar], window: int) -> list[PairStat]:
    """Plausible PairStat records (rolling OLS) on the common bar times, for fixtures only."""
    b_by_start = {bar.start: bar for bar in bars_b}
    common = [(bar, b_by_start[bar.start]) for bar in bars_a if bar.start in b_by_start]
    out = []
    for i in range(2, len(common)):
        chunk = common[max(0, i - window + 1) : i + 1]
        a = np.array([x.close for x, _ in chunk])
        b = np.array([y.close for _, y in chunk])
        beta, alpha = np.polyfit(b, a, 1) if np.ptp(b) > 0 else (0.0, float(a.mean()))
        spreads = a - beta * b
        mean, std = float(spreads.mean()), float(spreads.std(ddof=1)) or 1e-9
        returns_a, returns_b = np.diff(np.log(a)), np.diff(np.log(b))
        with np.errstate(all="ignore"):
            corr = float(np.corrcoef(returns_a, returns_b)[0, 1]) if len(a) > 2 else 0.0
        corr = corr if np.isfinite(corr) else 0.0
        out.append(
            PairStat(
                ts=chunk[-1][0].start, price_a=float(a[-1]), price_b=float(b[-1]),
                alpha=float(alpha), beta=float(beta), spread=float(spreads[-1]),
                zscore=(float(spreads[-1]) - mean) / std, corr=corr, window=window,
                n=len(chunk), method="ols", spread_mean=mean, spread_std=std,
                adf_stat=-3.2 if i % 10 == 0 else None, adf_pvalue=0.02 if i % 10 == 0 else None,
                half_life=12.5 if i % 10 == 0 else None,
                coint_pvalue=0.04 if i % 10 == 0 else None,
            )
        )  # fmt: skip
    return out


@dataclass
class Seeded:
    bars_a: list[Bar]
    bars_b: list[Bar]
    stats: list[PairStat]


def seed_pair(
    client: redis.Redis,
    view: PairView,
    default_window: int,
    *,
    bars: int | None = None,
    stats: bool = True,
) -> Seeded:
    """Fill `bars:<tf>:<A|B>`, the view's analytics stream and latest hash from the recordings."""
    tf_ms = {"1s": 1_000, "1m": 60_000, "5m": 300_000}[view.tf]
    bars_a, bars_b = recorded_bars(view.a, tf_ms), recorded_bars(view.b, tf_ms)
    if bars is not None:
        bars_a, bars_b = bars_a[:bars], bars_b[:bars]
    seeded = rolling_stats(bars_a, bars_b, view.window) if stats else []
    pipe = client.pipeline(transaction=False)
    for bar in bars_a:
        pipe.xadd(keys.bars(view.tf, view.a), bar.to_fields())
    for bar in bars_b:
        pipe.xadd(keys.bars(view.tf, view.b), bar.to_fields())
    for stat in seeded:
        pipe.xadd(view.stream_key(default_window), stat.to_fields())
    if seeded:
        pipe.delete(view.latest_key(default_window))
        pipe.hset(view.latest_key(default_window), mapping=seeded[-1].to_fields())
    pipe.execute()
    return Seeded(bars_a, bars_b, seeded)


# The dashboard as a process ------------------------------------------------------------------


@dataclass
class DashboardProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def healthz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


@contextlib.contextmanager
def dashboard_process(
    redis_url: str, log_dir: Path, **overrides: str
) -> Iterator[DashboardProcess]:
    """`python -m services.dashboard` on a free port, until `/healthz` answers."""
    port = free_port()
    settings = {"DASH_HOST": "127.0.0.1", "DASH_PORT": str(port), "LOG_LEVEL": "WARNING"}
    env = service_env(redis_url, **{**settings, **overrides})
    log = log_dir / f"dashboard-{port}.log"
    process = start_service("dashboard", env, log=log)
    dashboard = DashboardProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        if not wait_until(lambda: healthz(dashboard.url) is not None, within=30, interval=0.2):
            raise RuntimeError(f"dashboard did not start: {log.read_text()[-2000:]}")
        yield dashboard
    finally:
        dashboard.stop()


# Headless Chromium ---------------------------------------------------------------------------


class GraphNotDrawn(AssertionError):
    """The page has no Plotly plot in the graph asked for (yet)."""


class Browser:
    """A headless Chromium driven by Selenium, its console collected, downloads in a folder."""

    def __init__(self, downloads: Path, size: tuple[int, int] = (1440, 900)) -> None:
        for binary in (CHROMIUM, CHROMEDRIVER):
            if not os.access(binary, os.X_OK):
                raise RuntimeError(
                    f"{binary} is missing: run scripts/install-system-deps.sh browser"
                )
        downloads.mkdir(parents=True, exist_ok=True)
        self.downloads = downloads
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={size[0]},{size[1]}")
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        self.console: list[dict[str, Any]] = []

    def quit(self) -> None:
        with contextlib.suppress(WebDriverException):
            self.driver.quit()

    def open(self, url: str) -> None:
        self.driver.get(url)

    def collect_console(self) -> list[dict[str, Any]]:
        self.console.extend(self.driver.get_log("browser"))
        return self.console

    @contextlib.contextmanager
    def no_console_errors(self, allow: tuple[str, ...] = ()) -> Iterator[Browser]:
        """Forget the console so far; fail if the page logs an error before the block ends
        (other than those that mention one of `allow`)."""
        self.collect_console()
        self.console.clear()
        yield self
        errors = [e for e in self.console_errors() if not any(a in e for a in allow)]
        assert not errors, f"console errors: {errors}"

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.collect_console() if e.get("level") == "SEVERE"]

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The element's visible text, read in one step in the page (no stale handles), or ""."""
        try:
            found = self.driver.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
            )
        except WebDriverException:
            return ""
        return str(found or "")

    def texts(self, css: str) -> list[str]:
        """The visible text of every match, read in one step (a re-render cannot interleave)."""
        found = self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);", css
        )
        return [str(text) for text in found or []]

    def stats(self) -> dict[str, str]:
        """The statistics panel as label -> value, read in one step."""
        pairs = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('#stats .stat'), t => ["
            "t.querySelector('.stat-label')?.innerText ?? '',"
            "t.querySelector('.stat-value')?.innerText ?? ''])"
        )
        return {str(label): str(value) for label, value in pairs or []}

    def wait_for(self, predicate: Any, timeout: float = 20.0, what: str = "") -> None:
        def check() -> bool:
            try:
                return bool(predicate())
            except (WebDriverException, GraphNotDrawn):
                return False

        if not wait_until(check, within=timeout, interval=0.2):
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate}; {self.diagnose()}"
            )

    def diagnose(self) -> str:
        """What the page showed when a wait failed: a screenshot beside the downloads folder,
        and the status line, banner and statistics as text."""
        shot = self.downloads.parent / f"failure-{time.monotonic_ns()}.png"
        parts = [f"screenshot {shot}"]
        with contextlib.suppress(WebDriverException):
            self.driver.save_screenshot(str(shot))
            for css in ("#chart-status", "#banner", "#stats", "#window"):
                found = self.driver.find_elements("css selector", css)
                value = found[0].get_attribute("value") if css == "#window" and found else None
                text = value if value is not None else (found[0].text if found else "(absent)")
                parts.append(f"{css}: {' | '.join(text.split(chr(10)))[:400]}")
        return "; ".join(parts)

    def type_into(self, css: str, text: str, *, enter: bool = True) -> None:
        """Replace the field's text as a user would (select all, delete, type): React sees
        every keystroke, which Selenium's `clear()` does not guarantee."""
        element = self.find(css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.BACKSPACE)
        element.send_keys(text + (Keys.ENTER if enter else ""))

    def upload(self, css: str, *paths: Path) -> None:
        """Choose files in a `dcc.Upload` (its hidden file input), replacing an earlier choice."""
        element = self.find(f"{css} input[type=file]")
        self.driver.execute_script("arguments[0].value = '';", element)
        element.send_keys("\n".join(str(path) for path in paths))

    def click(self, css: str) -> None:
        element = self.find(css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def trace_lengths(self, graph_id: str = "chart") -> list[int]:
        """Points in each trace of the Plotly graph as drawn in the page (a typed array that was
        not extended yet is still in its `bdata` form); `GraphNotDrawn` while
        the graph is not drawn yet (plotly.js loads after the page, so the status line can
        already say "Live" when there is no plot: `wait_for` waits through it)."""
        lengths = self.driver.execute_script(
            "const gd = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
            "const size = {f8: 8, f4: 4, i4: 4, u4: 4, i2: 2, u2: 2, i1: 1, u1: 1};"
            "const count = (x) => (x && typeof x.bdata === 'string')"
            "    ? atob(x.bdata).length / size[x.dtype] : (x || []).length;"
            "return gd && gd.data ? gd.data.map(t => count(t.x)) : null;",
            graph_id,
        )
        if lengths is None:
            raise GraphNotDrawn(f"#{graph_id} has no plot yet")
        return [int(n) for n in lengths]

    def trace_x(self, index: int, graph_id: str = "chart") -> list[float]:
        """The x values (epoch ms) of one drawn trace, decoded from its `bdata` form if need be."""
        values = self.driver.execute_script(
            "const gd = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
            "const types = {f8: Float64Array, f4: Float32Array, i4: Int32Array};"
            "const x = gd.data[arguments[1]].x;"
            "if (x && typeof x.bdata === 'string') {"
            "  const bin = atob(x.bdata); const bytes = new Uint8Array(bin.length);"
            "  for (let i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }"
            "  return Array.from(new types[x.dtype](bytes.buffer)); }"
            "return Array.from(x || []);",
            graph_id,
            index,
        )
        return [float(v) for v in values]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))

    def wait_for_download(self, suffix: str = ".csv", timeout: float = 15.0) -> Path:
        def done() -> Path | None:
            files = [p for p in self.downloads.iterdir() if p.name.endswith(suffix)]
            return files[0] if files else None

        self.wait_for(done, timeout, f"a {suffix} download")
        path = done()
        assert path is not None
        time.sleep(0.2)
        return path

    def clear_downloads(self) -> None:
        shutil.rmtree(self.downloads, ignore_errors=True)
        self.downloads.mkdir(parents=True, exist_ok=True)
