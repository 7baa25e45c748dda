"""Ten pages at once on the push channel: `python -m services.dashboard` on a private Redis, ten
`GET /push` event streams read as a browser's EventSource reads them, and an eleventh that
connects and never reads (a stalled page). One new 1s bar every 250 ms.

Timed: from the XADD of a bar to the moment each reader has the event naming it (same machine),
per page; the server's side of bar → screen, the part ten pages share. The browser's own part is
`python -m bench browser`.
"""

from __future__ import annotations

import dataclasses
import http.client
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from bench.bench_dashboard import VIEW, fill_streams
from bench.harness import private_redis
from shared import keys
from shared.schemas import Bar
from testkit.browser import dashboard_process

PAGES = 10
BARS = 60
EVERY_S = 0.25
LIVE = {"mode": "live", "a": VIEW.a, "b": VIEW.b, "tf": VIEW.tf, "window": VIEW.window,
        "method": "ols", "k": 2.0}  # fmt: skip


class Reader(threading.Thread):
    """One page's event stream: the wall time each id of leg A's bars stream first arrived."""

    def __init__(self, url: str, *, reads: bool = True) -> None:
        super().__init__(daemon=True)
        parsed = urllib.parse.urlparse(url)
        host = parsed.hostname or "127.0.0.1"
        self.connection = http.client.HTTPConnection(host, parsed.port, timeout=30)
        query = urllib.parse.urlencode({"view": orjson.dumps(LIVE).decode()})
        self.connection.request("GET", f"/push?{query}")
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read()
        self.reads = reads
        self.arrived: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while self.reads and not self.stop.is_set():
            line = self.response.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                now = time.time() * 1000
                moved = orjson.loads(line[6:])
                if "a" in moved:
                    self.arrived.setdefault(moved["a"], now)


def _percentiles(samples: list[float]) -> dict[str, float]:
    p50, p95, p99 = (round(float(v), 1) for v in np.percentile(samples, [50, 95, 99]))
    return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def run() -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-push-") as directory,
        private_redis() as server,
    ):
        client = redis.Redis.from_url(server.url, decode_responses=True)
        fill_streams(client, 1_000)
        with dashboard_process(server.url, Path(directory)) as dashboard:
            stalled = Reader(dashboard.url, reads=False)
            readers = [Reader(dashboard.url) for _ in range(PAGES)]
            for reader in readers:
                reader.start()
            time.sleep(1.0)
            key = keys.bars("1s", VIEW.a)
            newest: Any = client.xrevrange(key, count=1)
            last = Bar.from_fields(newest[0][1])
            sent: dict[str, float] = {}
            for i in range(BARS):
                bar = dataclasses.replace(last, start=last.start + 1_000 * (i + 1))
                at = time.time() * 1000
                sent[str(client.xadd(key, bar.to_fields()))] = at
                time.sleep(EVERY_S)
            time.sleep(1.0)
            for reader in [*readers, stalled]:
                reader.stop.set()
                reader.connection.close()
    per_page = []
    for reader in readers:
        lags = [reader.arrived[i] - at for i, at in sent.items() if i in reader.arrived]
        per_page.append({"events": len(lags), **_percentiles(lags)})
    every = [reader.arrived[i] - at for reader in readers for i, at in sent.items()
             if i in reader.arrived]  # fmt: skip
    results = {
        "pages": PAGES,
        "stalled_pages": 1,
        "bars": BARS,
        "all_pages": {"events": len(every), **_percentiles(every)},
        "worst_page_p95_ms": max(page["p95_ms"] for page in per_page),
        "per_page": per_page,
    }
    print(f"   ten pages, XADD → event: {results['all_pages']}", flush=True)
    print(f"   worst page p95: {results['worst_page_p95_ms']} ms", flush=True)
    return results
