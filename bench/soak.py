"""`python -m bench.soak` (`make soak`): hours of recorded trades through the whole pipeline,
compressed by replay, to show that memory stays bounded and nothing is lost.

The four services run as processes (the compose file's settings, a private redis-server with
AOF) and the ingestor replays `sample_data/` (3 minutes, 51,000 BTCUSDT and ETHUSDT trades)
with `REPLAY_SPEED` = `--speed` (60), `REPLAY_LOOP=1` and `REPLAY_SHIFT=1`: the file again and
again, each pass later in time and ids, for `--minutes` (1) of wall time, which is
`minutes * speed` minutes of recorded trading (an hour by default).

The streams are capped lower than the defaults so that each one reaches its cap in the first
half of a one-minute soak (`SOAK_MAXLEN`; the variables themselves win when set): trimming runs
for the whole second half, and memory after warm-up can be told from growth.

Every second: resident memory of each service and of redis-server, Redis `used_memory`, the
length of every stream, the SQLite file size, each consumer group's backlog and the ingestor's
queue, and whether each service reports healthy. At the end the ingestor is stopped (it drains
its queue), the writer drains, and SQLite must hold every tick the replay handed over.
Results to bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.__main__ import RESULTS, machine
from bench.harness import compose_env, group_state
from bench.pipeline_run import PIPELINE_SETS
from shared import keys
from shared.health import now_ms
from testkit.pipeline import Pipeline, rss_mb
from testkit.polling import wait_until
from testkit.processes import REPO

REPLAY = REPO / "sample_data" / "binance-futures-btcusdt-ethusdt-2025-12-16.ndjson.gz"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
SOAK_MAXLEN = {"MAXLEN_TICKS": "100000", "MAXLEN_BARS": "1000", "MAXLEN_ANALYTICS": "1000"}
SAMPLE_S = 1.0
UNWATCHED_S = 5.0
"""Startup: health is judged from this many seconds after the replay started."""
DRAIN_S = 120.0
FLAT_MB = 2.0
"""Growth from the end of warm-up to the end that still counts as flat (or 5%, if larger)."""
MEMORY = ("ingestor", "writer", "analytics", "dashboard", "redis-server", "redis used_memory")


def soak_env(speed: float) -> dict[str, str]:
    env = compose_env(leave_out=PIPELINE_SETS)
    env.update({k: os.environ.get(k, v) for k, v in SOAK_MAXLEN.items()})
    env.update(
        SOURCE="replay", REPLAY_FILE=str(REPLAY), REPLAY_SPEED=f"{speed:g}", REPLAY_LOOP="1",
        REPLAY_SHIFT="1",
    )  # fmt: skip
    return env


@dataclass
class Sample:
    at: float
    memory_mb: dict[str, float]
    lengths: dict[str, int]
    sqlite_mb: float
    backlog: dict[str, int]
    health: dict[str, str]
    """Per service: empty when healthy, else what its record says (status, age, problem)."""
    replayed: int


class Soak:
    def __init__(self, pipe: Pipeline, started: float) -> None:
        self.pipe = pipe
        self.started = started
        self.client = pipe.client()
        env = pipe.env
        a, b = pipe.symbols[:2]
        timeframes = env["TIMEFRAMES"].split(",")
        self.caps = {keys.ticks(s): int(env["MAXLEN_TICKS"]) for s in pipe.symbols}
        for tf in timeframes:
            self.caps.update({keys.bars(tf, s): int(env["MAXLEN_BARS"]) for s in pipe.symbols})
            self.caps[keys.analytics(a, b, tf)] = int(env["MAXLEN_ANALYTICS"])
        self.caps[keys.EVENTS] = int(env["MAXLEN_EVENTS"])
        self.ticks = [keys.ticks(s) for s in pipe.symbols]

    def sample(self) -> Sample:
        pipe, client = self.pipe, self.client
        memory = {name: rss_mb(pipe.pid(name)) for name in pipe.services}
        memory["redis-server"] = rss_mb(pipe.redis.pid() or 0)
        memory["redis used_memory"] = pipe.redis_memory_mb()
        files = [pipe.sqlite_path, pipe.sqlite_path.with_name(pipe.sqlite_path.name + "-wal")]
        health = pipe.health("ingestor")
        return Sample(
            at=time.perf_counter() - self.started,
            memory_mb=memory,
            lengths={key: int(client.xlen(key)) for key in self.caps},
            sqlite_mb=sum(f.stat().st_size for f in files if f.exists()) / 2**20,
            backlog={
                "ingestor": int(health.get("queue_depth", 0)),
                "writer": group_state(client, self.ticks, keys.WRITER_GROUP).backlog,
                "analytics": group_state(client, self.ticks, keys.ANALYTICS_GROUP).backlog,
            },
            health={name: _health(pipe, name) for name in pipe.services},
            replayed=int(health.get("replay_ticks", 0)),
        )

    def added(self) -> dict[str, tuple[int, int]]:
        """(entries ever appended, length now) of each capped stream."""
        found = {}
        for key in self.caps:
            info = self.client.xinfo_stream(key)
            found[key] = (int(info["entries-added"]), int(info["length"]))
        return found


def memory_summary(samples: list[Sample]) -> dict[str, Any]:
    """Per process: at the end of warm-up (half-way), at the end, and the slope of a straight
    line fitted to the second half."""
    half = samples[len(samples) // 2 :]
    minutes = np.asarray([s.at for s in half]) / 60
    summary: dict[str, Any] = {}
    for name in MEMORY:
        values = np.asarray([s.memory_mb[name] for s in half])
        after_warmup, end = float(values[0]), float(values[-1])
        slope = float(np.polyfit(minutes, values, 1)[0]) if len(values) > 1 else 0.0
        summary[name] = {
            "after_warmup_mb": round(after_warmup, 1),
            "end_mb": round(end, 1),
            "peak_mb": round(max(s.memory_mb[name] for s in samples), 1),
            "slope_mb_per_min": round(slope, 3),
            "flat": end - after_warmup <= max(FLAT_MB, 0.05 * after_warmup),
        }
    return summary


def stream_summary(soak: Soak, samples: list[Sample]) -> dict[str, Any]:
    ends = soak.added()
    summary = {}
    for key, cap in soak.caps.items():
        reached = next((s.at for s in samples if s.lengths[key] >= cap), None)
        added, length = ends[key]
        summary[key] = {
            "cap": cap,
            "added": added,
            "max_length": max(s.lengths[key] for s in samples),
            "end_length": length,
            "trimmed": added > length,
            "cap_reached_at_s": None if reached is None else round(reached, 1),
        }
    return summary


def _health(pipe: Pipeline, name: str) -> str:
    if pipe.healthy(name):
        return ""
    record = pipe.health(name)
    age_ms = now_ms() - int(record.get("updated", 0))
    return f"{record.get('status')}, {age_ms} ms old: {record.get('problem', '')}".strip(": ")


def health_summary(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    watched = [s for s in samples if s.at >= UNWATCHED_S]
    summary = {}
    for name in samples[0].health:
        unhealthy = [f"{s.at:.1f} s: {s.health[name]}" for s in watched if s.health[name]]
        summary[name] = {
            "healthy_samples": len(watched) - len(unhealthy),
            "samples": len(watched),
            "unhealthy": unhealthy[:20],
        }
    return summary


def finish(pipe: Pipeline) -> dict[str, Any]:
    """Stop the replay (the ingestor drains its queue), let the writer store everything, and
    compare SQLite with what the replay handed over."""
    pipe.kill("ingestor", signal.SIGTERM)
    drained = wait_until(pipe.writer_drained, DRAIN_S, 0.1)
    final = pipe.health("ingestor")
    with sqlite3.connect(pipe.sqlite_path) as conn:
        rows = dict(conn.execute("SELECT symbol, count(*) FROM ticks GROUP BY symbol").fetchall())
        first, last = conn.execute("SELECT min(ts), max(ts) FROM ticks").fetchone()
    replayed = int(final.get("replay_ticks", 0))
    stored = sum(int(n) for n in rows.values())
    writer = pipe.health("writer")
    gaps = sum(len(pipe.gap_ranges(s)) for s in pipe.symbols)
    analytics = _analytics_done(pipe, replayed)
    return {
        "analytics_consumed_ticks": int(analytics.get("ticks_consumed", 0)),
        "analytics_late_ticks": int(analytics.get("late_ticks", 0)),
        "replayed_ticks": replayed,
        "published_ticks": int(final.get("published", 0)),
        "stored_ticks": stored,
        "stored_per_symbol": rows,
        "writer_drained": drained,
        "overflowed": int(final.get("overflowed", 0)),
        "writer_lost": int(writer.get("lost", 0)),
        "gap_events": gaps,
        "recorded_hours_stored": round((last - first) / 3_600_000, 3) if first else 0.0,
        "zero_loss": drained and stored == replayed and gaps == 0,
    }


def _analytics_done(pipe: Pipeline, replayed: int) -> dict[str, str]:
    """The worker's health once it has consumed every tick, or has consumed nothing more for
    a few seconds (ticks trimmed before it read them never come)."""
    seen, still_since = -1, time.monotonic()
    while time.monotonic() - still_since < 3 * float(pipe.env["HEALTH_INTERVAL_S"]) + 1:
        record = pipe.health("analytics")
        consumed = int(record.get("ticks_consumed", 0))
        if consumed >= replayed:
            return record
        if consumed != seen:
            seen, still_since = consumed, time.monotonic()
        time.sleep(0.2)
    return record


def soak(minutes: float, speed: float) -> dict[str, Any]:
    seconds = minutes * 60
    consumers = [name for name in keys.SERVICES if name != "ingestor"]
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as directory,
        Pipeline(
            Path(directory), SYMBOLS, fsync="everysec", env=soak_env(speed), services=consumers
        ) as pipe,  # fmt: skip
    ):
        # The replay starts once its readers are up: at 60x a late analytics worker would
        # find ticks trimmed away before it read them.
        pipe.wait_healthy(within=60)
        pipe.start("ingestor")
        pipe.services.insert(0, "ingestor")
        started = time.perf_counter()
        run = Soak(pipe, started)
        samples: list[Sample] = []
        due = time.perf_counter()
        while due - started < seconds:
            time.sleep(max(0.0, due - time.perf_counter()))
            samples.append(run.sample())
            if len(samples) % 10 == 0:
                _progress(samples[-1])
            due += SAMPLE_S
        streams = stream_summary(run, samples)
        end = finish(pipe)
        run.client.close()
        sqlite_mb = samples[-1].sqlite_mb
    return {
        "minutes": minutes,
        "replay_speed": speed,
        "recorded_hours_replayed": round(end["recorded_hours_stored"], 2),
        "achieved_speed": round(end["recorded_hours_stored"] * 60 / minutes, 1),
        "samples": len(samples),
        "memory": memory_summary(samples),
        "streams": streams,
        "health": health_summary(samples),
        "loss": end,
        "sqlite_mb": round(sqlite_mb, 1),
        "sqlite_bytes_per_tick": round(sqlite_mb * 2**20 / max(1, end["stored_ticks"]), 1),
        "backlog_max": {k: max(s.backlog[k] for s in samples) for k in samples[0].backlog},
        "backlog_max_after_warmup": {
            k: max(s.backlog[k] for s in samples[len(samples) // 2 :]) for k in samples[0].backlog
        },
        "series": [_point(s) for s in samples],
    }


def _point(sample: Sample) -> dict[str, Any]:
    memory = {name: round(mb, 2) for name, mb in sample.memory_mb.items()}
    return {"at": round(sample.at, 2), "memory_mb": memory, "backlog": sample.backlog,
            "replayed": sample.replayed}  # fmt: skip


def _progress(sample: Sample) -> None:
    memory = ", ".join(f"{k} {v:.0f}" for k, v in sample.memory_mb.items())
    print(f"   {sample.at:5.0f} s: {sample.replayed:,} ticks replayed; MB: {memory}", flush=True)


def report(result: dict[str, Any]) -> None:
    print(
        f"   {result['minutes']:g} min at {result['replay_speed']:g}x: "
        f"{result['recorded_hours_replayed']:.2f} h of recorded trades "
        f"(achieved {result['achieved_speed']:g}x)"
    )
    print("   memory MB       after warm-up    end   slope MB/min  flat")
    for name, m in result["memory"].items():
        print(
            f"   {name:18s} {m['after_warmup_mb']:8.1f} {m['end_mb']:8.1f} "
            f"{m['slope_mb_per_min']:10.2f}     {m['flat']}"
        )
    for key, s in result["streams"].items():
        print(
            f"   {key:34s} cap {s['cap']:>7,} end {s['end_length']:>7,} "
            f"added {s['added']:>9,} trimmed {s['trimmed']}"
        )
    backlog = ", ".join(f"{k} {v:,}" for k, v in result["backlog_max_after_warmup"].items())
    print(f"   largest backlog after warm-up: {backlog}")
    loss = result["loss"]
    print(
        f"   replayed {loss['replayed_ticks']:,}, stored {loss['stored_ticks']:,}, gaps "
        f"{loss['gap_events']}, zero loss {loss['zero_loss']}; SQLite {result['sqlite_mb']} MB; "
        f"analytics consumed {loss['analytics_consumed_ticks']:,} "
        f"({loss['analytics_late_ticks']:,} late)"
    )
    for name, h in result["health"].items():
        print(f"   {name:10s} healthy {h['healthy_samples']}/{h['samples']} samples")
        for moment in h["unhealthy"][:3]:
            print(f"      {moment}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument(
        "--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 1)),
        help="wall-clock minutes (env SOAK_MINUTES, default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--speed", type=float, default=float(os.environ.get("SOAK_SPEED", 60)),
        help="replay speed (env SOAK_SPEED, default 60: a minute is an hour of trades)",
    )  # fmt: skip
    args = parser.parse_args()
    print(f"== soak: {args.minutes:g} min at {args.speed:g}x", flush=True)
    result = {"benchmark": "soak", "machine": machine(), **soak(args.minutes, args.speed)}
    report(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print("   saved bench/results/soak.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
