"""The dashboard as a process and a headless Chromium driven by Selenium: what the browser
tests and the browser bench share."""

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

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from testkit.polling import wait_until
from testkit.processes import free_port, service_env, start_service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--disable-extensions", "--disable-default-apps", "--mute-audio",
)  # fmt: skip


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
        self.console.extend(self.driver.get_log("browser"))  # type: ignore[no-untyped-call]
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
        and the status line, banner, statistics and upload status as text."""
        shot = self.downloads.parent / f"failure-{time.monotonic_ns()}.png"
        parts = [f"screenshot {shot}"]
        with contextlib.suppress(WebDriverException):
            self.driver.save_screenshot(str(shot))
            for css in ("#chart-status", "#banner", "#stats", "#window", "#upload-status"):
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
        """Choose files in a `dcc.Upload` (its hidden file input), replacing an earlier choice;
        the page can show the chart's status before it has drawn every panel, so this waits."""
        field = f"{css} input[type=file]"
        self.wait_for(lambda: self.find_all(field), timeout=10, what=f"{field} on the page")
        element = self.find(field)
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
        return self.trace_values(index, "x", graph_id)

    def trace_values(self, index: int, key: str, graph_id: str = "chart") -> list[float]:
        """One array (`x`, `y`) of one drawn trace, decoded from its `bdata` form if need be."""
        return self.trace_arrays(index, (key,), graph_id)[0]

    def trace_arrays(
        self, index: int, keys: Sequence[str], graph_id: str = "chart"
    ) -> list[list[float]]:
        """Arrays of one drawn trace read at one instant (between two redraws), each decoded
        from its `bdata` form if need be."""
        arrays = self.driver.execute_script(
            "const gd = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
            "const types = {f8: Float64Array, f4: Float32Array, i4: Int32Array};"
            "const decode = (x) => {"
            "  if (!(x && typeof x.bdata === 'string')) { return Array.from(x || []); }"
            "  const bin = atob(x.bdata); const bytes = new Uint8Array(bin.length);"
            "  for (let i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }"
            "  return Array.from(new types[x.dtype](bytes.buffer)); };"
            "return arguments[2].map(key => decode(gd.data[arguments[1]][key]));",
            graph_id,
            index,
            list(keys),
        )
        return [[float(v) for v in values] for values in arrays]

    def forming_draws(self) -> list[dict[str, int]]:
        """The page's own record of its draws of the bar in progress (`clientside.FORMING_JS`):
        the bar's start, its newest trade's receive time and when the redraw resolved."""
        draws = self.driver.execute_script("return (window.pairsTimings || {forming: []}).forming;")
        return [{k: int(v) for k, v in draw.items()} for draw in draws or []]

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
