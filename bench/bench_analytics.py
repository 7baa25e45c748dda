"""The analytics worker: ticks consumed per second, cost per pair update, tick-to-latest latency.

All runs use 20 symbols (190 pairs), timeframes 1s/1m/5m, window 60, the worker as a real process
(`python -m services.analytics`) on a private redis-server.

- drain: 600,000 ticks (50,000 per second of trade time, so 12 one-second bars of 190 pairs) are
  queued while the worker is paused (SIGSTOP), then it is resumed; ticks/s until its consumer
  group has read everything and its CPU time per tick.
- paced: ticks published at 50,000/s for 10 s with live timestamps; the worker's CPU use and its
  backlog (entries not yet read) while it keeps up.
- latency: ticks at 2,000/s with live timestamps; for each 1 s bar, from the XADD of the tick that
  closes it (the first with a trade time past the bar's end plus the lateness) to the moment
  every pair's `analytics:<A>-<B>:1s:latest` holds that bar (keyspace notifications).
- pair update: the engine alone, in this process: one interval of 190 OLS pairs (window 60), per
  pair; a Kalman and a Huber view; one ADF + half-life + cointegration run.
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import (
    closing_bar,
    cpu_seconds,
    group_state,
    percentiles,
    private_redis,
    rate,
)
from bench.probes import KeyspaceWatcher, bulk
from services.analytics.pairs import TimeframePairs, ViewState
from shared import keys
from shared.pairstats import adf_phase, stationarity, window_stats
from shared.views import Method, PairView
from testkit.polling import wait_until
from testkit.processes import REPO, service_env

SYMBOLS = [f"S{i:02d}USDT" for i in range(20)]
WINDOW = 60
LATENESS_MS = 500
DRAIN_TICKS = 600_000
PACED_RATE, PACED_S = 50_000, 10.0
LATENCY_RATE, LATENCY_S = 2_000, 20.0


def xadd_command(symbol: str, ts: int, price: float, trade_id: int, recv_ts: int) -> bytes:
    """XADD of one tick in Redis' wire format (the `Tick.to_fields()` layout)."""
    parts = [
        b"XADD", keys.ticks(symbol).encode(), b"*", b"ts", b"%d" % ts, b"symbol",
        symbol.encode(), b"price", b"%.2f" % price, b"size", b"0.010", b"trade_id",
        b"%d" % trade_id, b"side", b"buy", b"recv_ts", b"%d" % recv_ts,
    ]  # fmt: skip
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


class RawPublisher:
    """Pipelined XADDs over a plain socket: the bench must publish faster than the worker reads."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.prices = {s: 100.0 + 10 * i for i, s in enumerate(SYMBOLS)}
        self.trade_id = 0
        self.rng = np.random.default_rng(1)

    def commands(self, count: int, ts_of: Any) -> bytes:
        steps = self.rng.normal(0, 0.01, count)
        chunks = []
        for i in range(count):
            symbol = SYMBOLS[self.trade_id % len(SYMBOLS)]
            self.prices[symbol] *= 1 + steps[i] * 0.01
            self.trade_id += 1
            ts = ts_of(i)
            chunks.append(xadd_command(symbol, ts, self.prices[symbol], self.trade_id, ts))
        return b"".join(chunks)

    def send(self, payload: bytes, count: int) -> None:
        self.sock.sendall(payload + b"*1\r\n$4\r\nPING\r\n")
        received = b""
        while not received.endswith(b"+PONG\r\n"):
            received += self.sock.recv(1 << 20)
        if b"-ERR" in received:
            raise RuntimeError(received[:200].decode(errors="replace"))

    def close(self) -> None:
        self.sock.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_worker(url: str, directory: Path) -> subprocess.Popen[bytes]:
    env = service_env(
        url, SYMBOLS=",".join(SYMBOLS), SQLITE_PATH=str(directory / "none.db"),
        WINDOW=str(WINDOW), BAR_LATENESS_MS=str(LATENESS_MS), LOG_LEVEL="WARNING",
    )  # fmt: skip
    log = open(directory / "worker.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.analytics"], cwd=REPO, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    import redis

    sync = redis.Redis.from_url(url, decode_responses=True)
    if not wait_until(lambda: sync.hget(keys.health("analytics"), "status") == "ok", 60):
        process.kill()
        raise RuntimeError((directory / "worker.log").read_text())
    return process


def backlog(sync: Any) -> int:
    """Ticks the worker has not read yet."""
    return group_state(sync, [keys.ticks(s) for s in SYMBOLS], keys.ANALYTICS_GROUP).unread


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def drain(url: str, port: int, directory: Path) -> dict[str, Any]:
    import redis

    sync = redis.Redis.from_url(url, decode_responses=True)
    process = start_worker(url, directory)
    publisher = RawPublisher(port)
    start_ts = int(time.time() * 1000) - 60_000
    per_ms = DRAIN_TICKS / (DRAIN_TICKS / 50_000 * 1000)
    try:
        process.send_signal(signal.SIGSTOP)
        for lo in range(0, DRAIN_TICKS, 50_000):
            payload = publisher.commands(50_000, lambda i, lo=lo: start_ts + int((lo + i) / per_ms))
            publisher.send(payload, 50_000)
        cpu0 = cpu_seconds(process.pid)
        started = time.perf_counter()
        process.send_signal(signal.SIGCONT)
        while backlog(sync) > 0:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(process.pid) - cpu0
        late = int(sync.hget(keys.health("analytics"), "late_ticks") or 0)
        memory = rss_mb(process.pid)
    finally:
        publisher.close()
        stop(process)
    return {
        "drain_ticks": DRAIN_TICKS,
        "drain_ticks_per_s": rate(DRAIN_TICKS, elapsed),
        "drain_cpu_us_per_tick": round(cpu / DRAIN_TICKS * 1e6, 2),
        "drain_cpu_share_of_one_core": round(cpu / elapsed, 2),
        "drain_late_ticks": late,
        "worker_peak_rss_mb": round(memory, 1),
    }


def paced(url: str, port: int, directory: Path) -> dict[str, Any]:
    import redis

    sync = redis.Redis.from_url(url, decode_responses=True)
    process = start_worker(url, directory)
    publisher = RawPublisher(port)
    batch = PACED_RATE // 100
    backlogs = []
    try:
        cpu0 = cpu_seconds(process.pid)
        started = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) - started < PACED_S:
            due = int((now - started) * PACED_RATE)
            if sent < due:
                count = min(due - sent, 4 * batch)
                wall = int(time.time() * 1000)
                publisher.send(publisher.commands(count, lambda i, wall=wall: wall), count)
                sent += count
                if sent // batch % 20 == 0:
                    backlogs.append(backlog(sync))
            else:
                time.sleep(0.002)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(process.pid) - cpu0
        while backlog(sync) > 0 and time.perf_counter() - started < PACED_S + 30:
            time.sleep(0.01)
        caught_up = time.perf_counter() - started - elapsed
    finally:
        publisher.close()
        stop(process)
    return {
        "paced_offered_ticks_per_s": rate(sent, elapsed),
        "paced_worker_cpu_share_of_one_core": round(cpu / elapsed, 2),
        "paced_backlog_p50": int(np.percentile(backlogs, 50)) if backlogs else 0,
        "paced_backlog_max": max(backlogs, default=0),
        "paced_drained_after_s": round(caught_up, 2),
    }


def latency_run(url: str, port: int, directory: Path) -> dict[str, Any]:
    import redis

    sync = redis.Redis.from_url(url, decode_responses=True)
    sync.config_set("notify-keyspace-events", "Kh")
    process = start_worker(url, directory)
    pairs = list(itertools.combinations(SYMBOLS, 2))
    latest_keys = {keys.analytics_latest(a, b, "1s") for a, b in pairs}
    closing_sent: dict[int, float] = {}
    watcher = KeyspaceWatcher(port, "analytics:*:1s:latest")
    watcher.start()
    publisher = RawPublisher(port)
    cpu0 = cpu_seconds(process.pid)
    started = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - started < LATENCY_S:
        due = int((now - started) * LATENCY_RATE)
        if sent < due:
            count = due - sent
            wall = int(time.time() * 1000)
            closes = closing_bar(wall, LATENESS_MS)
            sent_at = time.perf_counter()
            publisher.send(publisher.commands(count, lambda i, wall=wall: wall), count)
            closing_sent.setdefault(closes, sent_at)
            sent += count
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(process.pid) - cpu0
    time.sleep(1.0)
    watcher.stop()
    publisher.close()
    stop(process)
    all_pairs, first_pair = [], []
    sent_times = sorted(closing_sent.values())
    for this, following in itertools.pairwise([*sent_times, float("inf")]):
        # Each pair's first update after the closing tick is the bar's fast phase.
        firsts: dict[str, float] = {}
        for at, key, _ in watcher.arrivals:
            if this < at < following and key in latest_keys:
                firsts.setdefault(key, at)
        if len(firsts) == len(pairs):
            all_pairs.append((max(firsts.values()) - this) * 1000)
            first_pair.append((min(firsts.values()) - this) * 1000)
    result = {f"latency_all_190_pairs_{k}": v for k, v in percentiles(all_pairs[1:]).items()}
    result.update({f"latency_first_pair_{k}": v for k, v in percentiles(first_pair[1:]).items()})
    result["latency_bars_measured"] = max(0, len(all_pairs) - 1)
    result["latency_offered_ticks_per_s"] = rate(sent, elapsed)
    result["latency_worker_cpu_share_of_one_core"] = round(cpu / elapsed, 2)
    return result


def pair_update_costs() -> dict[str, Any]:
    rng = np.random.default_rng(5)
    pairs = TimeframePairs("1s", len(SYMBOLS), WINDOW + 1, adf_every=10**6)
    for i, j in itertools.combinations(range(len(SYMBOLS)), 2):
        view = PairView(SYMBOLS[i], SYMBOLS[j], "1s", WINDOW)
        pairs.add(ViewState(view, i, j, view.id, view.id, adf_phase(view.id, 10**6)))
    prices = 100 + np.cumsum(rng.normal(0, 1, (len(SYMBOLS), 400)), axis=1)
    for bar in range(WINDOW + 5):
        pairs.on_interval(bar * 1000, prices[:, bar].tolist())
    rounds = 200
    started = time.perf_counter()
    for bar in range(WINDOW + 5, WINDOW + 5 + rounds):
        entries = pairs.on_interval(bar * 1000, prices[:, bar].tolist())
        for entry in entries:
            assert entry.stat is not None
            entry.stat.to_fields()
    per_interval = (time.perf_counter() - started) / rounds
    a, b = prices[0, -WINDOW:], prices[1, -WINDOW:]
    timings = {}
    methods: tuple[Method, ...] = ("kalman", "huber")
    for method in methods:
        started = time.perf_counter()
        for _ in range(50):
            window_stats(a[None, :], b[None, :], method)
        timings[method] = (time.perf_counter() - started) / 50
    started = time.perf_counter()
    for _ in range(20):
        stationarity(a, b, 1.0)
    adf_cost = (time.perf_counter() - started) / 20
    return {
        "ols_190_pairs_per_interval_ms": round(per_interval * 1000, 3),
        "ols_cost_per_pair_update_us": round(per_interval / len(entries) * 1e6, 2),
        "kalman_view_update_us": round(timings["kalman"] * 1e6, 1),
        "huber_view_update_us": round(timings["huber"] * 1e6, 1),
        "adf_halflife_coint_run_ms": round(adf_cost * 1000, 2),
        "adf_load_190_pairs_every_10_bars_ms_per_bar": round(adf_cost * 1000 * 19, 1),
    }


def run() -> dict[str, Any]:
    results: dict[str, Any] = {"symbols": len(SYMBOLS), "pairs": 190, "window": WINDOW}
    results.update(pair_update_costs())
    for name, step in (("drain", drain), ("paced", paced)):
        with private_redis() as server, tempfile.TemporaryDirectory() as directory:
            results.update(step(server.url, server.port, Path(directory)))
        print(f"   {name} done", flush=True)
    with private_redis() as server, tempfile.TemporaryDirectory() as directory:
        results.update(latency_run(server.url, server.port, Path(directory)))
    for name, value in results.items():
        print(f"   {name:48s} {value}")
    return results
