"""The whole pipeline, as `make up` runs it, at increasing offered rates, beside the limit of
each stage on this machine measured in the same run.

Limits (the bare loops of the stage benchmarks, each alone on the machine):
- WebSocket receive + parse, local server, one connection per symbol (`bench_ingestor`);
- XADD: `redis-benchmark` pipelined (the server's) and a pipelined redis.asyncio loop (the
  Python client's) (`bench_redis_baseline`);
- batched SQLite insert, 1,000 rows per transaction, into the full schema with its bar
  triggers (`bench_writer`).

Each offered rate is one fresh pipeline (`bench.pipeline_run`); the stage rates achieved are
given as percentages of these limits: the ingestor's published rate of the receive + parse
limit and of the XADD limits, the writer's stored rate of the insert limit.

`PIPELINE_RATES=2000,20000 PIPELINE_SECONDS=5 python -m bench pipeline` makes a short run.
The plot goes to docs/pipeline-bench.png.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from bench import bench_ingestor, bench_redis_baseline, bench_writer
from bench.harness import private_redis
from bench.pipeline_report import latency_table, plot, throughput_table
from bench.pipeline_run import Lag, run_rate
from testkit.processes import REPO
from testkit.recorded import recorded_ticks

RATES = (2_000, 5_000, 10_000, 20_000, 30_000, 40_000)
"""Offered ticks per second over both symbols."""
WARMUP_S = 3.0
SECONDS = 15.0
LIMIT_FRAMES = 100_000
"""Per symbol, for the receive + parse limit."""
LIMIT_ENTRIES = 100_000
PLOT = REPO / "docs" / "pipeline-bench.png"
TARGET_RATE = 20_000
TARGET_LATENCY_RATE, TARGET_P99_MS = 2_000, 50.0
LAG = Lag("BTCUSDT", seconds=1.5, every_s=5.0)
LAG_RATE = 2_000
LAG_RULES = {"old close rule (BAR_MAX_WAIT_MS=0)": {"BAR_MAX_WAIT_MS": "0"}, "default": {}}
"""The lagging-symbol runs: with `BAR_MAX_WAIT_MS=0` bars close as they did before the clock
waited for the slowest live symbol (on the fastest symbol's trades alone)."""


def rates() -> list[float]:
    chosen = os.environ.get("PIPELINE_RATES")
    return [float(r) for r in chosen.split(",")] if chosen else list(RATES)


def stage_limits() -> dict[str, Any]:
    server = bench_ingestor.ServerProcess("blast", LIMIT_FRAMES)
    try:
        receive = asyncio.run(bench_ingestor.bare_receive_and_parse(server, LIMIT_FRAMES))
    finally:
        server.stop()
    with private_redis() as redis:
        server_xadd = bench_redis_baseline.redis_benchmark_xadd(redis.port)
        client_xadd = asyncio.run(bench_redis_baseline.pipelined_xadd(redis.url, LIMIT_ENTRIES))
    rows = bench_writer.tick_rows(recorded_ticks(LIMIT_ENTRIES))
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as directory:
        insert = bench_writer.bare_insert_loop(rows, Path(directory), schema="full")
    return {
        "receive_parse_per_s": receive,
        "server_xadd_per_s": server_xadd,
        "client_xadd_per_s": client_xadd,
        "sqlite_insert_per_s": insert,
    }


def _pct(achieved: float, limit: float | None) -> float:
    return round(100 * achieved / limit, 1) if limit else float("nan")


def shares(result: dict[str, Any], limits: dict[str, Any]) -> dict[str, float]:
    published, stored = result["published_per_s"], result["stored_per_s"]
    return {
        "ingestor_pct_of_receive_parse": _pct(published, limits["receive_parse_per_s"]),
        "redis_pct_of_server_xadd": _pct(published, limits["server_xadd_per_s"]),
        "redis_pct_of_client_xadd": _pct(published, limits["client_xadd_per_s"]),
        "writer_pct_of_sqlite_insert": _pct(stored, limits["sqlite_insert_per_s"]),
    }


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, where this run measured them."""
    found: dict[str, Any] = {}
    for row in rows:
        if row["offered_per_s"] == TARGET_RATE:
            found["sustained_zero_loss_at_20000_per_s"] = row["sustained"] and row["zero_loss"]
        if row["offered_per_s"] == TARGET_LATENCY_RATE:
            p99 = row["tick_to_analytics_p99_ms"]
            found["tick_to_analytics_p99_ms_at_2000_per_s"] = p99
            found["tick_to_analytics_p99_under_50_ms_at_2000_per_s"] = p99 < TARGET_P99_MS
    return found


def run() -> dict[str, Any]:
    seconds = float(os.environ.get("PIPELINE_SECONDS", SECONDS))
    limits = stage_limits()
    for name, value in limits.items():
        print(f"   limit {name:24s} {value:>12,.0f}" if value else f"   limit {name:24s} n/a")
    rows = []
    for offered in rates():
        row = run_rate(offered, WARMUP_S, seconds)
        row.update(shares(row, limits))
        rows.append(row)
        print(
            f"   {offered:>8,.0f}/s offered: published {row['published_per_s']:,.0f}/s, "
            f"stored {row['stored_per_s']:,.0f}/s, sustained {row['sustained']}, "
            f"zero loss {row['zero_loss']}, late ticks {row['late_ticks']:,}",
            flush=True,
        )
    print(throughput_table(rows))
    print(latency_table(rows))
    plot(rows, PLOT)
    print(f"   plot saved to {PLOT.relative_to(REPO)}")
    met = targets(rows)
    for name, value in met.items():
        print(f"   target {name}: {value}")
    lagging = {}
    for name, env in LAG_RULES.items():
        row = run_rate(LAG_RATE, WARMUP_S, seconds, lag=LAG, env=env)
        lagging[name] = row
        p50, p99 = row["tick_to_analytics_p50_ms"], row["tick_to_analytics_p99_ms"]
        print(
            f"   {LAG.symbol} lagging {LAG.seconds:g} s every {LAG.every_s:g} s at "
            f"{LAG_RATE:,}/s, {name}: late ticks {row['late_ticks']:,}, "
            f"tick -> analytics p50/p99 {p50:.0f}/{p99:.0f} ms",
            flush=True,
        )
    return {
        "warmup_s": WARMUP_S,
        "seconds_per_rate": seconds,
        "limits": limits,
        "rates": rows,
        "targets": met,
        "lagging_symbol": lagging,
    }
