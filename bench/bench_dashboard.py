"""Cost of the dashboard's live-update callback, through Dash's own request handler.

Each step appends one bar to each leg, one statistics entry and the latest hash (what the worker
does on every 1s bar), then POSTs the chart callback exactly as the browser does and times the
request end to end (Redis reads, the points to append, JSON). Scenarios:
- `screen_10k`: 10,000 points on screen (the default cap), streams holding 10,000 entries;
- `day_stored`: streams holding a day of 1s bars (86,400 entries each) and SQLite holding a day
  of ticks of both legs, to show the cost does not grow with what is stored.
Also measured: full renders of the newest 10,000 entries (what a control change costs), the
first one (its entries read and parsed; after the warm-up the dashboard process does when it
starts, `services.dashboard.warmup`) and then repeated (from the cache of parsed entries), and
their size, raw and as sent to a browser (compressed).
"""

from __future__ import annotations

import gzip
import math
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brotli
import numpy as np
import orjson
import redis
from backports import zstd
from dash import Dash
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bench.harness import private_redis
from services.dashboard import ids, prefetch, warmup
from services.dashboard.app import build_app, redis_client
from services.dashboard.recent import RecentEntries
from shared import keys
from shared.config import Settings, load_settings
from shared.schemas import Bar, PairStat
from shared.tickdb import INSERT_TRADES, open_for_writing
from shared.views import PairView
from testkit.dash_requests import chart_request

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)
T0 = 1_765_843_200_000  # 2025-12-16 00:00:00 UTC
STEPS = 300
BROWSER_ENCODINGS = "gzip, deflate, br, zstd"
"""What Chromium sends; flask-compress prefers zstd, then brotli."""
DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": zstd.decompress,
    "br": brotli.decompress,
    "gzip": gzip.decompress,
    "identity": bytes,
}
FULL_RENDERS = 11


def _walk(n: int, start: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0, 2e-4, n)))


def _entries(i: int, a: float, b: float) -> tuple[Bar, Bar, PairStat]:
    ts = T0 + i * 1000
    bar_a = Bar(ts, a, a * 1.0001, a * 0.9999, a, 1.5, a, 40)
    bar_b = Bar(ts, b, b * 1.0001, b * 0.9999, b, 20.0, b, 90)
    beta = 29.6
    stat = PairStat(ts, a, b, 120.0, beta, a - beta * b, math.sin(i / 50) * 2.2, 0.87,
                    a - beta * b - 1.0, 4.0, 60, 60, "ols")  # fmt: skip
    return bar_a, bar_b, stat


def fill_streams(client: redis.Redis, count: int) -> int:
    """`count` bars per leg and statistics entries, as the worker would have written them."""
    prices_a, prices_b = _walk(count, 87_100.0, 1), _walk(count, 2_940.0, 2)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        bar_a, bar_b, stat = _entries(i, float(prices_a[i]), float(prices_b[i]))
        pipe.xadd(keys.bars("1s", VIEW.a), bar_a.to_fields())
        pipe.xadd(keys.bars("1s", VIEW.b), bar_b.to_fields())
        pipe.xadd(VIEW.stream_key(60), stat.to_fields())
        if i % 5_000 == 4_999:
            pipe.execute()
    pipe.hset(VIEW.latest_key(60), mapping=stat.to_fields())
    pipe.execute()
    return count


def fill_sqlite(path: Path, seconds: int, per_second: int) -> int:
    """A day of ticks of both legs in the tick database (the writer's schema)."""
    conn = open_for_writing(path)
    rng = random.Random(3)
    trade_id = 0
    conn.execute("BEGIN")
    for symbol, price in (("BTCUSDT", 87_100.0), ("ETHUSDT", 2_940.0)):
        rows = []
        for second in range(seconds):
            for k in range(per_second):
                trade_id += 1
                ts = T0 + second * 1000 + k * (1000 // per_second)
                rows.append((symbol, trade_id, ts, f"{price * (1 + rng.gauss(0, 1e-4)):.2f}",
                             "0.010", "buy", ts))  # fmt: skip
            if len(rows) >= 200_000:
                conn.executemany(INSERT_TRADES, rows)
                rows.clear()
        conn.executemany(INSERT_TRADES, rows)
    conn.execute("COMMIT")
    conn.close()
    return trade_id


def _full_renders(
    http: FlaskClient, view: dict[str, Any], count: int
) -> tuple[list[float], TestResponse]:
    """Time `count` full renders of `view` as the browser asks for them (compressed); the
    milliseconds of each and the last reply."""
    times: list[float] = []
    reply: TestResponse | None = None
    for _ in range(count):
        started = time.perf_counter()
        reply = http.post(
            "/_dash-update-component",
            json=chart_request(view, None, "view.data", 0),
            headers={"Accept-Encoding": BROWSER_ENCODINGS},
        )
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, reply.data[:500]
    assert reply is not None
    return times, reply


def _opened(app: Dash) -> FlaskClient:
    """A client of `app` that has been served the page's layout and callback map, as a browser
    asks for them before any callback (Dash sets up its routes on the first request)."""
    http: FlaskClient = app.server.test_client()
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert http.get(path).status_code == 200, path
    return http


def _first_render_read_ahead(settings: Settings, view: dict[str, Any]) -> float:
    """The first full render of a view on a new server whose read-ahead pass has run (as the
    dashboard's `prefetch` thread does at start), after the page's layout and callback map were
    served, as a browser asks for them before any callback."""
    recent = RecentEntries()
    http = _opened(build_app(settings, recent))
    client = redis_client(settings)
    prefetch.read_ahead(
        client, settings, recent, prefetch.views_ahead(settings, recent.max_streams)
    )
    client.close()
    times, _ = _full_renders(http, view, 1)
    return times[0]


def measure(redis_url: str, sqlite_path: Path, existing: int) -> dict[str, Any]:
    settings = load_settings(redis_url=redis_url, sqlite_path=sqlite_path, dash_max_points=10_000)
    http = _opened(build_app(settings))
    warmup.warm(settings)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    view = {"mode": "live", "a": VIEW.a, "b": VIEW.b, "tf": VIEW.tf, "window": 60,
            "method": "ols", "k": 2.0, "theme": "dark"}  # fmt: skip

    full_ms, full = _full_renders(http, view, FULL_RENDERS)
    read_ahead_first_ms = _first_render_read_ahead(settings, view)
    wire_bytes, encoding = len(full.data), full.headers.get("Content-Encoding", "identity")
    raw = DECODERS[encoding](full.data)
    body = orjson.loads(raw)
    cursor = body["response"][ids.CURSOR]["data"]
    on_screen = cursor["n"]["a"]
    full_renders = 0

    prices_a, prices_b = _walk(STEPS, 87_150.0, 5), _walk(STEPS, 2_941.0, 6)
    samples, sizes = [], []
    for step in range(STEPS):
        bar_a, bar_b, stat = _entries(existing + step, float(prices_a[step]), float(prices_b[step]))
        pipe = client.pipeline(transaction=False)
        pipe.xadd(keys.bars("1s", VIEW.a), bar_a.to_fields())
        pipe.xadd(keys.bars("1s", VIEW.b), bar_b.to_fields())
        pipe.xadd(VIEW.stream_key(60), stat.to_fields())
        pipe.hset(VIEW.latest_key(60), mapping=stat.to_fields())
        pipe.execute()
        request = chart_request(view, cursor, "live-tick.n_intervals", step + 1)
        started = time.perf_counter()
        reply = http.post("/_dash-update-component", json=request)
        samples.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, reply.data[:500]
        sizes.append(len(reply.data))
        response = orjson.loads(reply.data)["response"]
        full_renders += ids.GRAPH in response
        if ids.GRAPH in response:
            cursor = response[ids.CURSOR]["data"]
        else:  # the page's own cursor once it has drawn the step
            cursor = response[ids.CHART_STEP]["data"]["cursor"]
    assert full_renders >= 1, "the page's traces filled up and were reduced again"
    client.close()
    values = np.asarray(samples)
    return {
        "points_on_screen": on_screen,
        "stream_entries": existing,
        "update_p50_ms": round(float(np.percentile(values, 50)), 2),
        "update_p95_ms": round(float(np.percentile(values, 95)), 2),
        "update_p99_ms": round(float(np.percentile(values, 99)), 2),
        "update_bytes_mean": round(float(np.mean(sizes))),
        "update_bytes_max": int(max(sizes)),
        "full_renders_during_updates": full_renders,
        "full_render_first_ms": round(full_ms[0], 1),
        "full_render_first_read_ahead_ms": round(read_ahead_first_ms, 1),
        "full_render_p50_ms": round(float(np.percentile(full_ms[1:], 50)), 1),
        "full_render_max_ms": round(max(full_ms[1:]), 1),
        "full_render_bytes": len(raw),
        "full_render_wire_bytes": wire_bytes,
        "full_render_encoding": encoding,
    }


HISTORY_SECONDS = 100_000
HISTORY_RENDERS = 5


def measure_history(sqlite_path: Path) -> dict[str, Any]:
    """A full render of a History range of `HISTORY_SECONDS` 1s bars per leg (the whole callback
    request: SQLite, statistics, figure, JSON, compression)."""
    settings = load_settings(redis_url="redis://127.0.0.1:1/0", sqlite_path=sqlite_path)
    http = _opened(build_app(settings))
    warmup.warm(settings)
    view = {"mode": "history", "a": VIEW.a, "b": VIEW.b, "tf": "1s", "window": 60,
            "method": "ols", "k": 2.0, "theme": "dark", "start_ms": T0,
            "end_ms": T0 + HISTORY_SECONDS * 1000}  # fmt: skip
    times, reply = _full_renders(http, view, HISTORY_RENDERS)
    encoding = reply.headers.get("Content-Encoding", "identity")
    status = orjson.loads(DECODERS[encoding](reply.data))["response"][ids.CHART_STATUS]
    return {
        "bars_per_leg": HISTORY_SECONDS,
        "render_p50_ms": round(float(np.percentile(times, 50)), 1),
        "render_max_ms": round(max(times), 1),
        "wire_bytes": len(reply.data),
        "status": status["children"],
    }


def run() -> dict[str, Any]:
    results: dict[str, Any] = {"steps": STEPS}
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as directory:
        with private_redis() as server:
            fill_streams(redis.Redis.from_url(server.url), 10_000)
            results["screen_10k"] = measure(server.url, Path(directory) / "none.db", 10_000)
            print(f"   10k on screen: {results['screen_10k']}", flush=True)
        with private_redis() as server:
            day = 86_400
            fill_streams(redis.Redis.from_url(server.url), day)
            sqlite_path = Path(directory) / "day.db"
            ticks = fill_sqlite(sqlite_path, day, 5)
            results["day_stored"] = {"sqlite_ticks": ticks, **measure(server.url, sqlite_path, day)}
            print(f"   a day stored:  {results['day_stored']}", flush=True)
        history_path = Path(directory) / "history.db"
        fill_sqlite(history_path, HISTORY_SECONDS, 2)
        results["history_100k"] = measure_history(history_path)
        print(f"   history of 100k 1s bars: {results['history_100k']}", flush=True)
    return results
