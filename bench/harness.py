"""Shared benchmark plumbing: a private redis-server, timing and percentile helpers."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests.support import RedisProcess


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
