"""One measured run of the whole pipeline at one offered rate (for `bench_pipeline`).

The four services run as processes on a private redis-server (AOF, `appendfsync everysec` as in
the compose file), with the compose file's settings, fed by the Binance-format feed process of
`tests.pipeline_feed`. After a warm-up, the run is measured for `seconds`:

- throughput per stage: ticks delivered by the feed (its send log), published to Redis (stream
  lengths), stored in SQLite (entries the writer acknowledged, which it does after the commit)
  and read by the analytics worker (its group's entries read), per second of the window;
- backlog per stage, sampled every `SAMPLE_S`: the ingestor's queue, and unread + pending
  entries of groups `writer` and `analytics`. The rate is sustained when no stage's backlog
  grows from the first half of the window to the second by more than `GROWTH_S` seconds of
  ticks, and the feed delivered what was offered;
- latencies of the ticks that were published, from the moment the feed wrote a tick to its
  socket: until it is visible in Redis (`StreamArrivals`), until SQLite holds it
  (`SqlitePoller`), and for each one-second bar, from the tick that closes it (the first whose
  trade time passes the bar's end plus `BAR_LATENESS_MS`) until `analytics:<A>-<B>:1s:latest`
  holds that bar (`KeyspaceWatcher`);
- resident memory of each process and Redis' `used_memory`, CPU share of each process.

Then the feed stops, the pipeline drains, and every tick the feed delivered must be in Redis
and in SQLite, with no gap reported.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import GroupState, closing_bar, compose_env, cpu_seconds, group_state
from bench.harness import percentiles as _percentiles
from bench.probes import Floats, Ints, KeyspaceWatcher, SqlitePoller, StreamArrivals
from shared import keys
from testkit.pipeline import Pipeline, rss_mb

SYMBOLS = ("BTCUSDT", "ETHUSDT")
SAMPLE_S = 0.5
GROWTH_S = 0.25
"""Backlog growth tolerated between the window's halves, in seconds of offered ticks."""
DELIVERED_AT_LEAST = 0.97
"""Share of the offered rate the feed must deliver (it backs off when the ingestor reads
slower than it sends, as a full socket buffer makes a real server do)."""
DRAIN_S = 60.0
QUIET_S = 2.0
PIPELINE_SETS = (
    "REDIS_URL", "SYMBOLS", "SQLITE_PATH", "SOURCE", "BINANCE_WS_URL", "BINANCE_REST_URL",
    "DASH_HOST", "DASH_PORT", "REPLAY_FILE",
)  # fmt: skip
"""Variables the harness sets itself (the private Redis, the feed, free ports)."""
PROCESSES = ("ingestor", "writer", "analytics", "dashboard", "redis", "feed", "bench")
"""`bench` is this process: the probes, which read every tick too."""


def bench_env(maxlen_ticks: int) -> dict[str, str]:
    """The compose file's settings; streams long enough to keep a whole run (nothing trimmed,
    so stream lengths count what was published)."""
    return {**compose_env(leave_out=PIPELINE_SETS), "MAXLEN_TICKS": str(maxlen_ticks)}


@dataclass
class Sample:
    at: float
    published: int
    queued: int
    writer: GroupState
    analytics: GroupState
    rss_mb: dict[str, float]
    cpu_s: dict[str, float]
    redis_used_mb: float

    @property
    def backlogs(self) -> dict[str, int]:
        return {
            "ingestor": self.queued,
            "writer": self.writer.backlog,
            "analytics": self.analytics.backlog,
        }


@dataclass(frozen=True)
class Lag:
    """During the measured window, hold `symbol`'s trades for `seconds` every `every_s`, then
    send them at once: a connection that falls behind and catches up."""

    symbol: str
    seconds: float
    every_s: float


class Run:
    """The pipeline and its probes for one rate."""

    def __init__(self, pipe: Pipeline, rate: float, lag: Lag | None = None) -> None:
        self.pipe = pipe
        self.rate = rate
        self.lag = lag
        self.client = pipe.client()
        self.client.config_set("notify-keyspace-events", "Kh")
        self.lateness_ms = int(pipe.env["BAR_LATENESS_MS"])
        port = pipe.redis.port
        a, b = pipe.symbols[:2]
        self.latest_key = keys.analytics_latest(a, b, "1s")
        self.arrivals = StreamArrivals(port, pipe.symbols)
        self.stored = SqlitePoller(pipe.sqlite_path, pipe.symbols)
        self.latest = KeyspaceWatcher(port, self.latest_key, read_field="ts")
        self.streams = [keys.ticks(s) for s in pipe.symbols]
        assert pipe.feed is not None
        self.pids = {name: pipe.pid(name) for name in pipe.services}
        self.pids["redis"] = pipe.redis.pid() or 0
        self.pids["feed"] = pipe.feed.process.pid or 0
        self.pids["bench"] = os.getpid()

    def sample(self) -> Sample:
        health = self.pipe.health("ingestor")
        return Sample(
            at=time.perf_counter(),
            published=sum(int(self.client.xlen(s)) for s in self.streams),
            queued=int(health.get("queue_depth", 0)),
            writer=group_state(self.client, self.streams, keys.WRITER_GROUP),
            analytics=group_state(self.client, self.streams, keys.ANALYTICS_GROUP),
            rss_mb={name: rss_mb(pid) for name, pid in self.pids.items()},
            cpu_s={name: cpu_seconds(pid) for name, pid in self.pids.items()},
            redis_used_mb=self.pipe.redis_memory_mb(),
        )

    def measure(self, warmup_s: float, seconds: float) -> list[Sample]:
        for probe in (self.arrivals, self.stored, self.latest):
            probe.start()
        assert self.pipe.feed is not None
        self.pipe.feed.set_rate(self.rate)
        time.sleep(warmup_s)
        samples = [self.sample()]
        next_lag = samples[0].at
        while samples[-1].at - samples[0].at < seconds:
            if self.lag is not None and time.perf_counter() >= next_lag:
                self.pipe.feed.lag(self.lag.symbol, self.lag.seconds)
                next_lag += self.lag.every_s
            time.sleep(max(0.0, samples[-1].at + SAMPLE_S - time.perf_counter()))
            samples.append(self.sample())
        self.pipe.feed.set_rate(0)
        return samples

    def drain(self, delivered: int) -> float | None:
        """Seconds until everything delivered is published, stored and read (None: not within
        `DRAIN_S`). A tick lost on the way never arrives: then the streams going quiet ends
        the wait."""
        started = time.perf_counter()
        seen, quiet_since = -1, started
        while (now := time.perf_counter()) - started < DRAIN_S:
            arrived = sum(len(a.trade_id) for a in self.arrivals.arrived.values())
            if arrived != seen:
                seen, quiet_since = arrived, now
            published = arrived == delivered or now - quiet_since > QUIET_S
            state = group_state(self.client, self.streams, keys.ANALYTICS_GROUP)
            if published and self.pipe.writer_drained() and state.unread == 0:
                return now - started
            time.sleep(0.05)
        return None

    def stop_probes(self) -> None:
        time.sleep(self.lateness_ms / 1000 + 0.5)
        for probe in (self.arrivals, self.stored, self.latest):
            probe.stop()
        self.client.close()


def run_rate(
    rate: float,
    warmup_s: float,
    seconds: float,
    *,
    lag: Lag | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One fresh pipeline at `rate`; `lag` makes one symbol fall behind now and then, `env`
    overrides settings."""
    maxlen = max(1_000, int(rate * (warmup_s + seconds + DRAIN_S)))
    environment = {**bench_env(maxlen), **(env or {})}
    with (
        tempfile.TemporaryDirectory(prefix="bench-pipeline-") as directory,
        Pipeline(Path(directory), SYMBOLS, fsync="everysec", env=environment) as pipe,
    ):
        pipe.wait_healthy(within=60)
        run = Run(pipe, rate, lag)
        samples = run.measure(warmup_s, seconds)
        assert pipe.feed is not None
        drained_s = run.drain(pipe.feed.report()["sent"])
        run.stop_probes()
        report = pipe.feed.report()
        result: dict[str, Any] = {"offered_per_s": rate, **throughput(run, samples, report)}
        result.update(sustained(samples, rate, result["delivered_per_s"]))
        result.update(losses(run, report, drained_s))
        result.update(latencies(run, samples, report))
        result.update(resources(samples))
        return result


def _window(samples: list[Sample]) -> tuple[float, float]:
    return samples[0].at, samples[-1].at


def _batches(report: dict[str, Any], symbol: str) -> Floats:
    """(send time, first id, last id) rows of the feed's writes on `symbol`."""
    rows = report["delivered"][symbol]["batches"]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def throughput(run: Run, samples: list[Sample], report: dict[str, Any]) -> dict[str, Any]:
    start, end = _window(samples)
    elapsed = end - start
    delivered = 0
    for symbol in run.pipe.symbols:
        rows = _batches(report, symbol)
        inside = rows[(rows[:, 0] >= start) & (rows[:, 0] < end)]
        delivered += int((inside[:, 2] - inside[:, 1] + 1).sum())
    first, last = samples[0], samples[-1]
    return {
        "seconds": round(elapsed, 2),
        "delivered_per_s": round(delivered / elapsed, 1),
        "published_per_s": round((last.published - first.published) / elapsed, 1),
        "stored_per_s": round((last.writer.acked - first.writer.acked) / elapsed, 1),
        "analytics_read_per_s": round((last.analytics.read - first.analytics.read) / elapsed, 1),
    }


def sustained(samples: list[Sample], rate: float, delivered_per_s: float) -> dict[str, Any]:
    """Backlog growth per stage between the halves of the window, in ticks; whether the rate
    was sustained (no stage fell behind, the feed delivered what was offered)."""
    half = len(samples) // 2
    growth = {}
    for stage in samples[0].backlogs:
        first = np.mean([s.backlogs[stage] for s in samples[:half]])
        second = np.mean([s.backlogs[stage] for s in samples[half:]])
        growth[stage] = int(second - first)
    result: dict[str, Any] = {f"backlog_growth_{k}": v for k, v in growth.items()}
    result.update({f"backlog_end_{k}": v for k, v in samples[-1].backlogs.items()})
    result["backlog_max"] = max(sum(s.backlogs.values()) for s in samples)
    result["sustained"] = bool(
        all(v <= GROWTH_S * rate for v in growth.values())
        and delivered_per_s >= DELIVERED_AT_LEAST * rate
    )
    return result


def losses(run: Run, report: dict[str, Any], drained_s: float | None) -> dict[str, Any]:
    """Every delivered id in Redis and in SQLite, no gap reported, nothing overflowed."""
    missing_redis = missing_sqlite = gaps = 0
    for symbol in run.pipe.symbols:
        delivered = {i for first, last in report["delivered"][symbol]["ranges"]
                     for i in range(first, last + 1)}  # fmt: skip
        in_redis = {int(i) for i in run.arrivals.arrived[symbol].trade_id}
        in_sqlite = set(run.pipe.sqlite_ids(symbol))
        missing_redis += len(delivered - in_redis)
        missing_sqlite += len(delivered - in_sqlite)
        gaps += len(run.pipe.gap_ranges(symbol))
    overflowed = int(run.pipe.health("ingestor").get("overflowed", 0))
    late = int(run.pipe.health("analytics").get("late_ticks", 0))
    return {
        "delivered_total": int(report["sent"]),
        "drained_after_s": None if drained_s is None else round(drained_s, 2),
        "missing_in_redis": missing_redis,
        "missing_in_sqlite": missing_sqlite,
        "gap_events": gaps,
        "overflowed": overflowed,
        "late_ticks": late,
        "zero_loss": drained_s is not None
        and missing_redis == missing_sqlite == gaps == overflowed == 0,
    }


def _send_times(
    report: dict[str, Any], symbol: str, start: float, end: float
) -> tuple[Ints, Floats]:
    """Every tick the feed wrote on `symbol` inside the window: (ids, send times)."""
    rows = _batches(report, symbol)
    rows = rows[(rows[:, 0] >= start) & (rows[:, 0] < end)]
    sizes = (rows[:, 2] - rows[:, 1] + 1).astype(np.int64)
    firsts = np.repeat(rows[:, 1].astype(np.int64), sizes)
    offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return firsts + offsets, np.repeat(rows[:, 0], sizes)


def _first_seen(times: Floats, newest: Ints, ids: Ints, sent: Floats) -> Floats:
    """Milliseconds from each send to the first observation at or past its id."""
    index = np.searchsorted(newest, ids, side="left")
    seen = index < len(times)
    return (times[index[seen]] - sent[seen]) * 1000


def latencies(run: Run, samples: list[Sample], report: dict[str, Any]) -> dict[str, Any]:
    start, end = _window(samples)
    to_redis, to_sqlite = [], []
    for symbol in run.pipe.symbols:
        ids, sent = _send_times(report, symbol, start, end)
        at, arrived_ids, _ = run.arrivals.arrived[symbol].arrays()
        published = np.isin(ids, arrived_ids)
        ids, sent = ids[published], sent[published]
        order = np.argsort(arrived_ids, kind="stable")
        to_redis.append(_first_seen(at[order], arrived_ids[order], ids, sent))
        polled, newest = run.stored.series(symbol)
        to_sqlite.append(_first_seen(polled, newest, ids, sent))
    bars = bar_latencies(run, report, start, end)
    result = {}
    for name, values in (
        ("receive_to_redis", np.concatenate(to_redis)),
        ("tick_to_sqlite", np.concatenate(to_sqlite)),
        ("tick_to_analytics", np.asarray(bars)),
    ):
        for stat, value in _percentiles(values.tolist()).items():
            result[f"{name}_{stat}"] = value
    result["bars_measured"] = len(bars)
    return result


def bar_latencies(run: Run, report: dict[str, Any], start: float, end: float) -> list[float]:
    """For each 1s bar closed inside the window: from the send of its closing tick to the
    first time the latest hash held that bar."""
    closing: dict[int, float] = {}
    for symbol in run.pipe.symbols:
        _, ids, ts = run.arrivals.arrived[symbol].arrays()
        rows = _batches(report, symbol)
        batch_of = np.searchsorted(rows[:, 2], ids, side="left")
        bar_of = closing_bar_starts(ts, run.lateness_ms)
        for k in np.flatnonzero(np.diff(bar_of, prepend=bar_of[0] - 1)):
            bar, sent = int(bar_of[k]), float(rows[batch_of[k], 0])
            if start <= sent < end:
                closing[bar] = min(closing.get(bar, sent), sent)
    published: dict[int, float] = {}
    for at, key, value in run.latest.arrivals:
        if key == run.latest_key and value is not None:
            published.setdefault(int(value), at)
    return [(published[bar] - sent) * 1000 for bar, sent in sorted(closing.items())
            if bar in published and published[bar] > sent]  # fmt: skip


def closing_bar_starts(ts: Ints, lateness_ms: int) -> Ints:
    """`closing_bar` of every trade time (of the newest trade time so far: a trade closes
    only bars no earlier trade has closed)."""
    return closing_bar(np.maximum.accumulate(ts), lateness_ms)


def resources(samples: list[Sample]) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    elapsed = last.at - first.at
    result: dict[str, Any] = {
        f"rss_mb_{name}": round(max(s.rss_mb[name] for s in samples), 1) for name in PROCESSES
    }
    result["redis_used_memory_mb"] = round(max(s.redis_used_mb for s in samples), 1)
    for name in PROCESSES:
        result[f"cpu_{name}"] = round((last.cpu_s[name] - first.cpu_s[name]) / elapsed, 2)
    return result
