"""Shared benchmark plumbing: a private redis-server, the compose file's settings, timing,
percentile and process helpers."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import redis
import yaml

from testkit.processes import REPO, RedisProcess

Time = TypeVar("Time", int, npt.NDArray[np.int64])
"""Epoch milliseconds: one, or an array of them."""
COMPOSE_DEFAULT = re.compile(r"^\$\{[A-Z0-9_]+:-(.*)\}$")


@contextmanager
def private_redis(*, appendonly: bool = False) -> Iterator[RedisProcess]:
    """A redis-server of its own for the run, so results do not depend on the machine's Redis."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        server = RedisProcess(Path(directory), appendonly=appendonly).start()
        try:
            yield server
        finally:
            server.stop()


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p99/max of latency samples in milliseconds, rounded for reports."""
    if not samples_ms:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    values = np.asarray(samples_ms, dtype=float)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "max_ms": round(float(values.max()), 3),
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def compose_env(*, leave_out: Iterable[str] = ()) -> dict[str, str]:
    """The services' environment as `docker compose up` sets it with nothing overridden (each
    `${NAME:-default}` taken at its default), minus the variables in `leave_out`."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    environment: dict[str, Any] = compose["x-service"]["environment"]
    left_out = set(leave_out)
    env = {}
    for name, value in environment.items():
        if name not in left_out:
            match = COMPOSE_DEFAULT.match(str(value))
            env[name] = match[1] if match else str(value)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def closing_bar(ts_ms: Time, lateness_ms: int, bar_ms: int = 1_000) -> Time:
    """The start of the bar that a trade at `ts_ms` closes (it is the first trade past that
    bar's end plus the lateness), if no trade before it got there."""
    closes_before = ts_ms - lateness_ms
    return closes_before - closes_before % bar_ms - bar_ms


@dataclass(frozen=True)
class GroupState:
    """A consumer group over a set of streams: entries it has read, entries not read yet, and
    entries read but not acknowledged."""

    read: int
    unread: int
    pending: int

    @property
    def backlog(self) -> int:
        return self.unread + self.pending

    @property
    def acked(self) -> int:
        return self.read - self.pending


def group_state(client: redis.Redis, streams: Iterable[str], group: str) -> GroupState:
    """Where Redis cannot count what is unread (entries deleted), the stream's length bounds it.
    A stream that does not exist yet counts nothing."""
    read = unread = pending = 0
    for stream in streams:
        if not client.exists(stream):
            continue
        for info in client.xinfo_groups(stream):
            if info["name"] == group:
                lag = info.get("lag")
                unread += int(lag) if lag is not None else int(client.xlen(stream))
                pending += int(info["pending"])
                read += int(info.get("entries-read") or 0)
    return GroupState(read, unread, pending)
