"""This machine's Redis limits: the ceilings the pipeline's stages are measured against.

- `redis-benchmark` pipelined XADD: the server's own limit from one client.
- a bare pipelined XADD loop through redis.asyncio (hiredis): the Python client's limit.
- a bare XREADGROUP COUNT 1000 + XACK loop through redis.asyncio.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from typing import Any

from bench.harness import private_redis, rate
from shared.redis_io import client, read_group

ENTRIES = 200_000
BATCH = 1_000
FIELDS = {
    "ts": "1765892498698",
    "symbol": "BTCUSDT",
    "price": "87162.10",
    "size": "0.003",
    "trade_id": "6905373851",
    "side": "sell",
    "recv_ts": "1765892498712",
}


def redis_benchmark_xadd(port: int) -> float | None:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    output = subprocess.run(
        [binary, "-p", str(port), "-n", str(ENTRIES), "-P", "100", "-c", "1", "-q",
         "XADD", "bench:rb", "MAXLEN", "~", "100000", "*", *sum(FIELDS.items(), ())],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.findall(r"([0-9.]+) requests per second", output)
    return float(found[-1]) if found else None


async def pipelined_xadd(url: str, entries: int = ENTRIES) -> float:
    redis = client(url)
    started = time.perf_counter()
    for _ in range(entries // BATCH):
        pipe = redis.pipeline(transaction=False)
        for _ in range(BATCH):
            pipe.xadd("bench:py", FIELDS, maxlen=ENTRIES, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return rate(entries // BATCH * BATCH, elapsed)


async def xreadgroup_ack(url: str) -> float:
    redis = client(url)
    await redis.xgroup_create("bench:py", "g", id="0")
    read = 0
    started = time.perf_counter()
    while True:
        reply = await read_group(redis, "g", "c", {"bench:py": ">"}, count=1_000)
        if not reply:
            break
        ids = [entry_id for entry_id, _ in reply[0][1]]
        await redis.xack("bench:py", "g", *ids)
        read += len(ids)
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return rate(read, elapsed)


def run() -> dict[str, Any]:
    with private_redis() as server:
        server_limit = redis_benchmark_xadd(server.port)
        client_xadd = asyncio.run(pipelined_xadd(server.url))
        client_read = asyncio.run(xreadgroup_ack(server.url))
    results = {
        "redis_benchmark_xadd_per_s": server_limit,
        "redis_py_pipelined_xadd_per_s": client_xadd,
        "redis_py_xreadgroup_xack_per_s": client_read,
    }
    for name, value in results.items():
        print(f"   {name:36s} {value:>12,.0f}" if value else f"   {name:36s} n/a")
    return results
