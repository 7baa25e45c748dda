"""Cost of the screener with a universe of 50 symbols (1,225 pairs), through Dash's own request
handler, as the browser asks: the first update (every row and the heatmap) and the live updates
after it, each with 10% of the rows changed and a new correlation matrix (a 1s bar closed).
Times are of the whole callback request (Redis read, rows, diff, JSON, compression); bytes are
as sent to a browser (zstd) and decoded."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import orjson
import redis

from bench.bench_dashboard import BROWSER_ENCODINGS, DECODERS, _opened
from bench.harness import private_redis
from services.dashboard.app import build_app
from shared import keys
from shared.config import load_settings
from shared.correlation import correlation_matrix
from shared.pairstats import Stationarity
from shared.schemas import PairStat
from shared.screener import ScreenRow
from testkit.dash_requests import screener_request

SYMBOLS = tuple(f"S{i:02d}USDT" for i in range(50))
STEPS = 100
CHANGED = 0.10
T0 = 1_765_843_200_000


def _row(a: str, b: str, ts: int, rng: np.random.Generator) -> ScreenRow:
    z = float(rng.normal())
    stat = PairStat(ts, 100.0, 50.0, float(rng.normal()), 1.5 + float(rng.normal(0, 0.1)), 0.5,
                    z, float(rng.uniform(-1, 1)), 0.4, 0.9, 60, 60, "ols")  # fmt: skip
    carried = Stationarity(-3.1, float(rng.uniform()), float(rng.uniform(1, 30)),
                           float(rng.uniform()))  # fmt: skip
    return ScreenRow(a, b, stat, carried, ts - 3_000)


def _matrix_fields(ts: int, rng: np.random.Generator) -> dict[Any, Any]:
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (len(SYMBOLS), 61)), axis=1))
    counts = np.full(len(SYMBOLS), 61, dtype=np.int64)
    matrix = correlation_matrix(closes, counts, SYMBOLS, ts=ts, tf="1s", window=60)
    assert matrix is not None
    return matrix.to_fields()


def _post(http: Any, held: Any, n: int) -> tuple[float, int, int, dict[str, Any]]:
    started = time.perf_counter()
    reply = http.post("/_dash-update-component", json=screener_request(held, n, ("1s", 60, "ols")),
                      headers={"Accept-Encoding": BROWSER_ENCODINGS})  # fmt: skip
    took = (time.perf_counter() - started) * 1000
    assert reply.status_code == 200, reply.data[:300]
    raw = DECODERS[reply.headers.get("Content-Encoding", "identity")](reply.data)
    return took, len(reply.data), len(raw), orjson.loads(raw)["response"]


def _percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


def run() -> dict[str, Any]:
    rng = np.random.default_rng(5)
    legs = list(itertools.combinations(SYMBOLS, 2))
    with private_redis() as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        rows: dict[Any, Any] = {f"{a}-{b}": _row(a, b, T0, rng) for a, b in legs}
        client.hset(keys.screener("1s"), mapping={p: r.to_json() for p, r in rows.items()})
        client.hset(keys.correlation("1s"), mapping=_matrix_fields(T0, rng))
        settings = load_settings(redis_url=server.url, symbols=",".join(SYMBOLS))
        # Each first update on a new app: nothing parsed yet (opening the screener after a start).
        firsts = [_post(_opened(build_app(settings)), None, 0) for _ in range(5)]
        http = _opened(build_app(settings))
        _post(http, None, 0)
        held = firsts[-1][3]["screener-held"]["data"]
        times, wire, decoded = [], [], []
        for step in range(1, STEPS + 1):
            ts = T0 + step * 1_000
            changed = rng.choice(len(legs), int(len(legs) * CHANGED), replace=False)
            pipe = client.pipeline(transaction=False)
            for k in changed:
                a, b = legs[int(k)]
                pipe.hset(keys.screener("1s"), f"{a}-{b}", _row(a, b, ts, rng).to_json())
            pipe.hset(keys.correlation("1s"), mapping=_matrix_fields(ts, rng))
            pipe.execute()
            took, sent, raw, response = _post(http, held, step)
            held = response["screener-held"]["data"]
            times.append(took)
            wire.append(sent)
            decoded.append(raw)
        client.close()
    return {
        "pairs": len(legs),
        "first_update": {
            **_percentiles([f[0] for f in firsts]),
            "wire_bytes": firsts[-1][1],
            "decoded_bytes": firsts[-1][2],
        },
        "live_update_10pct": {
            **_percentiles(times),
            "wire_bytes_mean": round(np.mean(wire)),
            "decoded_bytes_mean": round(np.mean(decoded)),
        },
    }
