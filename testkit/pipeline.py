"""The whole pipeline as `make up` runs it, for end-to-end tests, benchmarks and the soak.

A private redis-server with AOF on (as in the compose file), the Binance-format feed of
`tests.pipeline_feed` in its own process, and the four services as real processes
(`python -m services.<name>`), each logging to a file of its own. The pipeline can kill and
restart any of them, stop and start Redis, and read back what reached Redis and SQLite.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import redis

from shared import keys
from shared.health import now_ms
from testkit.pipeline_feed import Feed
from testkit.polling import wait_until
from testkit.processes import RedisProcess, free_port, service_env, start_service

SERVICES = keys.SERVICES
HEALTHY_WITHIN_S = 10.0
"""The issue's bound: every service reports healthy again this soon after a fault is over."""
FRESH_MS = 2_000
"""A health record older than this is a silent service, whatever its status says."""
GAP = re.compile(r"missing trade ids (\d+)\.\.(\d+)")

FAST_ENV = {
    "BINANCE_STALE_TIMEOUT_S": "1",
    "BINANCE_RECONNECT_BASE_S": "0.05",
    "BINANCE_RECONNECT_MAX_S": "0.5",
    "HEALTH_INTERVAL_S": "0.2",
    "TIMEFRAMES": "1s,1m",
    "WINDOW": "20",
    "ADF_EVERY": "10",
    "BAR_LATENESS_MS": "300",
    "WRITER_CLAIM_IDLE_MS": "1000",
    "WRITER_CLAIM_INTERVAL_S": "0.5",
    "WRITER_BUSY_TIMEOUT_MS": "200",
    "LOG_LEVEL": "INFO",
}
"""Short timeouts so that reconnects, stale feeds and claims take fractions of a second."""


class Pipeline:
    """Use as `with Pipeline(tmp_path) as pipe:`; every process is stopped when the block ends."""

    def __init__(
        self,
        directory: Path,
        symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
        *,
        fsync: str = "always",
        env: Mapping[str, str] | None = None,
        services: Sequence[str] = SERVICES,
    ) -> None:
        self.directory = directory
        self.symbols = [s.upper() for s in symbols]
        self.services = list(services)
        self.redis = RedisProcess(directory / "redis", appendonly=True, fsync=fsync)
        self.sqlite_path = directory / "ticks.db"
        self.dash_port = free_port()
        self.extra_env = dict(env or {})
        self.feed: Feed | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.started_ms: dict[str, int] = {}

    def __enter__(self) -> Pipeline:
        try:
            self.redis.start()
            self.feed = Feed(self.symbols)
            for name in self.services:
                self.start(name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- processes ---------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        assert self.feed is not None
        own = {
            "SOURCE": "binance",
            "SYMBOLS": ",".join(s.lower() for s in self.symbols),
            "BINANCE_WS_URL": self.feed.base,
            "BINANCE_REST_URL": self.feed.rest_url,
            "SQLITE_PATH": str(self.sqlite_path),
            "DASH_PORT": str(self.dash_port),
        }
        return service_env(self.redis.url, **{**own, **FAST_ENV, **self.extra_env})

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def start(self, name: str) -> None:
        self.started_ms[name] = now_ms()
        self.processes[name] = start_service(name, self.env, log=self.log(name))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        process.wait(timeout=15)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def close(self) -> dict[str, int | None]:
        """SIGTERM every service (they drain), then the feed and Redis: the exit codes."""
        codes: dict[str, int | None] = {}
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        if self.feed is not None:
            self.feed.close()
        self.redis.stop()
        return codes

    def log_tails(self, names: Iterable[str] | None = None, chars: int = 2_000) -> str:
        parts = []
        for name in names or self.processes:
            path = self.log(name)
            text = path.read_text(errors="replace")[-chars:] if path.exists() else ""
            parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts)

    # --- Redis -------------------------------------------------------------------------------

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True, socket_timeout=5)

    def health(self, name: str) -> dict[str, str]:
        with self.client() as client:
            return cast(dict[str, str], client.hgetall(keys.health(name)))

    def healthy(self, name: str, since_ms: int = 0) -> bool:
        """`ok` with a fresh heartbeat, written after `since_ms` by a process started after
        the last `start(name)` (a killed service's last record says `ok` for a while)."""
        try:
            record = self.health(name)
        except redis.RedisError:
            return False
        updated, started = int(record.get("updated", 0)), int(record.get("started", 0))
        return (
            record.get("status") == "ok"
            and now_ms() - updated < FRESH_MS
            and updated >= since_ms
            and started >= self.started_ms.get(name, 0)
        )

    def wait_healthy(
        self, names: Iterable[str] | None = None, within: float = HEALTHY_WITHIN_S
    ) -> float:
        """Seconds until every service (or `names`) is `ok` with a heartbeat sent from now on."""
        wanted = list(names or self.services)
        since = now_ms()
        started = time.monotonic()
        if not wait_until(lambda: all(self.healthy(n, since) for n in wanted), within, 0.05):
            states = {n: self._status(n) for n in wanted}
            raise AssertionError(
                f"not healthy within {within:g} s: {states}\n{self.log_tails(wanted)}"
            )
        return time.monotonic() - started

    def _status(self, name: str) -> str:
        try:
            record = self.health(name)
        except redis.RedisError as exc:
            return f"unreadable ({exc})"
        age = now_ms() - int(record.get("updated", 0))
        return f"{record.get('status')} ({age} ms old) {record.get('problem', '')}".strip()

    def stream_ids(self, symbol: str) -> list[int]:
        """The trade ids on `ticks:<symbol>`, oldest first."""
        found: list[int] = []
        with self.client() as client:
            start = "-"
            while True:
                chunk = client.xrange(keys.ticks(symbol), start, "+", count=10_000)
                entries = cast(list[tuple[str, dict[str, str]]], chunk)
                found += [int(fields["trade_id"]) for _, fields in entries]
                if len(entries) < 10_000:
                    return found
                start = f"({entries[-1][0]}"

    def gap_ranges(self, symbol: str) -> list[tuple[int, int]]:
        """The id ranges the ingestor reported missing for `symbol` (`gap` events)."""
        ranges = []
        for fields in self._entries(keys.EVENTS):
            if fields.get("kind") == "gap" and fields.get("symbol") == symbol:
                match = GAP.search(fields.get("detail", ""))
                if match:
                    ranges.append((int(match[1]), int(match[2])))
        return ranges

    def _entries(self, stream: str, *, newest: int = 0) -> list[dict[str, str]]:
        """The fields of every entry of `stream` (or of its `newest` ones, newest first)."""
        with self.client() as client:
            reply = client.xrevrange(stream, count=newest) if newest else client.xrange(stream)
        return [fields for _, fields in cast(list[tuple[str, dict[str, str]]], reply)]

    def events(self, kind: str | None = None) -> list[dict[str, str]]:
        return [f for f in self._entries(keys.EVENTS) if kind is None or f.get("kind") == kind]

    def alerts(self) -> list[dict[str, str]]:
        return self._entries(keys.ALERTS)

    def writer_drained(self) -> bool:
        """The writer's group has read and acknowledged every entry of every tick stream and
        back-fill stream."""
        try:
            with self.client() as client:
                for symbol in self.symbols:
                    for stream in (keys.ticks(symbol), keys.backfill(symbol)):
                        if not client.exists(stream):
                            continue
                        groups = cast(list[dict[str, Any]], client.xinfo_groups(stream))
                        mine = [g for g in groups if g["name"] == keys.WRITER_GROUP]
                        if not mine or mine[0]["pending"] or mine[0]["lag"]:
                            return False
        except redis.RedisError:
            return False
        return True

    def backfill_done(self) -> bool:
        """No gap waits for back-fill (`gaps:*` empty, health says nothing waits)."""
        try:
            with self.client() as client:
                if any(client.hlen(keys.gaps(symbol)) for symbol in self.symbols):
                    return False
            health = self.health("ingestor")
        except redis.RedisError:
            return False
        return all(health.get(f"backfill_waiting:{s}", "0") == "0" for s in self.symbols)

    def backfill_ids(self, symbol: str) -> list[int]:
        """The first trade id of each tick on `backfill:<symbol>`, oldest first."""
        return [int(fields["trade_id"]) for fields in self._entries(keys.backfill(symbol))]

    def newest_bar_start(self, symbol: str, tf: str = "1s") -> int:
        newest = self._entries(keys.bars(tf, symbol), newest=1)
        return int(newest[0]["start"]) if newest else 0

    def newest_stat_ts(self, tf: str = "1s") -> int:
        a, b = self.symbols[:2]
        newest = self._entries(keys.analytics(a, b, tf), newest=1)
        return int(newest[0]["ts"]) if newest else 0

    def redis_memory_mb(self) -> float:
        with self.client() as client:
            info = cast(dict[str, Any], client.info("memory"))
        return int(info["used_memory"]) / 2**20

    # --- SQLite ------------------------------------------------------------------------------

    def sqlite_ranges(self, symbol: str) -> list[tuple[int, int, int, str]]:
        """(trade_id, last_trade_id, ts, size) of every row of `symbol`, in id order."""
        if not self.sqlite_path.exists():
            return []
        with sqlite3.connect(self.sqlite_path, timeout=10) as conn:
            rows = conn.execute(
                "SELECT trade_id, last_trade_id, ts, size FROM ticks WHERE symbol = ?"
                " ORDER BY trade_id",
                (symbol,),
            ).fetchall()
        return [(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]

    def sqlite_ids(self, symbol: str) -> list[int]:
        """Trade ids stored for `symbol`, in id order, duplicates (if any) included."""
        if not self.sqlite_path.exists():
            return []
        with sqlite3.connect(self.sqlite_path, timeout=10) as conn:
            rows = conn.execute(
                "SELECT trade_id FROM ticks WHERE symbol = ? ORDER BY trade_id", (symbol,)
            ).fetchall()
        return [int(r[0]) for r in rows]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def expand(ranges: Iterable[Sequence[int]]) -> set[int]:
    return {i for first, last in ranges for i in range(first, last + 1)}
