"""The ingestor's throughput and latency, from a local WebSocket server into a private Redis.

A separate process runs a local server speaking Binance's `@trade` format (the tests' own
`BinanceServer`) on one connection per symbol; this process runs the ingestor's own code
(`services.ingestor.service.Ingestor`, the body of `python -m services.ingestor`).

- bare receive-and-parse: the same connections read by a loop that only parses each frame;
  the ceiling of the WebSocket client plus parser in Python;
- publisher alone: ready ticks through the queue and the Redis Function into Redis;
- ingestor throughput: frames sent as fast as the socket takes them, until every tick is in
  Redis (measured from the first published batch to the last);
- latency at 1,000 ticks/s: from the moment the feed has a frame to the moment the Redis call
  that published it returned, p50/p99/max.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import redis as sync_redis
from websockets.asyncio.client import connect

from bench.harness import percentiles, private_redis, rate
from services.ingestor.binance import TickRow, parse_frame
from services.ingestor.connection import MAX_MESSAGE_BYTES
from services.ingestor.feed import SymbolFeed
from services.ingestor.live import LiveSource
from services.ingestor.routes import ROUTES, Endpoint
from services.ingestor.service import Ingestor
from shared.config import Settings, load_settings
from shared.runtime import ServiceContext
from testkit.binance_ws import BinanceServer, frame_bytes, trade_event
from testkit.polling import eventually
from testkit.recorded import market_trades
from testkit.services import running_service

SYMBOLS = ("BTCUSDT", "ETHUSDT")
THROUGHPUT_TICKS = 200_000
"""Per symbol."""
LATENCY_RATE = 1_000
"""Ticks per second over both symbols."""
LATENCY_SECONDS = 10
FIRST_ID = 6_905_373_851


def frames_for(symbol: str, count: int) -> list[bytes]:
    """`count` real-looking trade frames: the recorded prices and sizes, ids counting up."""
    recorded = [row for row in market_trades() if row.symbol == symbol]
    return [
        frame_bytes(
            trade_event(symbol, FIRST_ID + i, recorded[i % len(recorded)].ts + i // len(recorded),
                        recorded[i % len(recorded)].price, recorded[i % len(recorded)].size,
                        maker=i % 3 == 0)
        )
        for i in range(count)
    ]  # fmt: skip


# --- the server process -------------------------------------------------------------------


def serve(pipe: Connection, mode: str, count: int) -> None:
    """Server process: report the port, wait for one connection per symbol, then send
    (`blast`: all frames as fast as the socket takes them; `paced`: `LATENCY_RATE` per
    second), then wait for "stop". Runs as many rounds as the parent asks for."""
    asyncio.run(_serve(pipe, mode, count))


async def _serve(pipe: Connection, mode: str, count: int) -> None:
    frames = {symbol: frames_for(symbol, count) for symbol in SYMBOLS}
    loop = asyncio.get_running_loop()
    async with BinanceServer() as server:
        pipe.send(server.port)
        while (await loop.run_in_executor(None, pipe.recv)) == "go":
            for symbol in SYMBOLS:
                await server.wait_for(f"{symbol.lower()}@trade", within=60)
            connections = {s: server.listeners(f"{s.lower()}@trade")[0] for s in SYMBOLS}
            if mode == "blast":
                await asyncio.gather(*(server.blast(connections[s], frames[s]) for s in SYMBOLS))
            else:
                await _paced(connections, frames)
            pipe.send("sent")
            for symbol in SYMBOLS:  # the client closes its connections when it is done
                await server.wait_for(f"{symbol.lower()}@trade", count=0, exactly=True, within=60)


async def _paced(connections: dict[str, Any], frames: dict[str, list[bytes]]) -> None:
    interval = 1 / LATENCY_RATE
    started = time.monotonic()
    total = LATENCY_RATE * LATENCY_SECONDS
    for i in range(total):
        symbol = SYMBOLS[i % 2]
        await connections[symbol].send(frames[symbol][i // 2].decode())
        wait = started + (i + 1) * interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


class ServerProcess:
    def __init__(self, mode: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, mode, count), daemon=True)
        self.process.start()
        self.port: int = self.pipe.recv()

    @property
    def base(self) -> str:
        """The host (`BINANCE_WS_URL`)."""
        return f"ws://127.0.0.1:{self.port}"

    def go(self) -> None:
        self.pipe.send("go")

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


# --- this process -------------------------------------------------------------------------


def bench_settings(redis_url: str, base: str) -> Settings:
    """The queue holds a whole run: the server sends faster than any publisher takes, and a
    live feed drops the oldest ticks rather than slow its reader."""
    return load_settings(
        redis_url=redis_url, symbols=",".join(SYMBOLS), source="binance", binance_ws_url=base,
        binance_stale_timeout_s=60, log_level="WARNING",
        maxlen_ticks=THROUGHPUT_TICKS * 2, ingest_queue_size=THROUGHPUT_TICKS * 2,
    )  # fmt: skip


async def bare_receive_and_parse(server: ServerProcess, count: int) -> float:
    symbols = frozenset(SYMBOLS)
    started: list[float] = []

    async def read(symbol: str) -> None:
        url = Endpoint.from_url(server.base).url(ROUTES["trade"], symbol, "trade")
        async with connect(url, compression=None, max_size=MAX_MESSAGE_BYTES, max_queue=256) as ws:
            for _ in range(count):
                raw = await ws.recv(decode=False)
                if not started:
                    started.append(time.perf_counter())
                parse_frame(raw, time.time_ns() // 1_000_000, symbols)

    server.go()
    await asyncio.gather(*(read(symbol) for symbol in SYMBOLS))
    elapsed = time.perf_counter() - started[0]
    server.pipe.recv()
    return rate(count * len(SYMBOLS), elapsed)


async def ingest(
    settings: Settings, server: ServerProcess, total: int, latency: bool
) -> dict[str, Any]:
    """Run the ingestor until `total` ticks are published; its rate, or its latencies."""
    published = 0
    first_batch: list[tuple[float, int]] = []
    done = asyncio.Event()
    received_ns: dict[tuple[str, int], int] = {}
    latencies_ms: list[float] = []

    def on_published(rows: Sequence[TickRow]) -> None:
        nonlocal published
        now = time.perf_counter()
        if latency:
            now_ns = time.monotonic_ns()
            latencies_ms.extend(
                (now_ns - received_ns.pop((r.symbol, r.trade_id))) / 1e6 for r in rows
            )
        if not first_batch:
            first_batch.append((now, len(rows)))
        published += len(rows)
        if published >= total:
            first_batch.append((now, published))
            done.set()

    made: list[Ingestor] = []

    async def body(ctx: ServiceContext) -> None:
        ingestor = Ingestor(ctx.settings, ctx.stop, on_published=on_published)
        if latency:
            _stamp_receive_times(ingestor, received_ns)
        made.append(ingestor)
        await ingestor.serve(ctx.health)

    async with running_service("ingestor", settings, body):
        assert await eventually(lambda: bool(made))
        server.go()
        await asyncio.wait_for(done.wait(), 300)
    server.pipe.recv()
    ingestor = made[0]
    if latency:
        return percentiles(latencies_ms)
    (start, first_size), (end, _) = first_batch
    return {
        "ticks_per_s": rate(total - first_size, end - start),
        "batches": ingestor.publisher.batches,
    }


def _stamp_receive_times(ingestor: Ingestor, received_ns: dict[tuple[str, int], int]) -> None:
    """Wrap each feed's frame handler to note when the frame reached the ingestor."""
    assert isinstance(ingestor.source, LiveSource)
    for feed in ingestor.source.feeds:
        _wrap(feed, received_ns)


def _wrap(feed: SymbolFeed, received_ns: dict[tuple[str, int], int]) -> None:
    handle = feed._handle
    symbols = frozenset({feed.symbol})

    def stamped(raw: bytes, recv_ts: int) -> None:
        parsed = parse_frame(raw, recv_ts, symbols)
        assert isinstance(parsed, TickRow)
        received_ns[(parsed.symbol, parsed.trade_id)] = time.monotonic_ns()
        handle(raw, recv_ts)

    feed._handle = stamped  # type: ignore[method-assign]


async def publisher_alone(redis_url: str, total: int) -> float:
    """Ticks already parsed, straight through the queue and the Redis Function."""
    settings = load_settings(redis_url=redis_url, symbols=",".join(SYMBOLS), source="synthetic")
    ingestor = Ingestor(settings, asyncio.Event())
    rows: list[TickRow] = [
        TickRow(1_765_892_498_698 + i, SYMBOLS[i % 2], "87162.10", "0.003", 10**9 + i, "buy", 1)
        for i in range(total)
    ]
    await ingestor.publisher.load()
    publishing = asyncio.create_task(ingestor.publisher.run())
    started = time.perf_counter()
    for row in rows:
        await ingestor.intake.queue.put(row)
    ingestor.intake.queue.close()
    await publishing
    elapsed = time.perf_counter() - started
    await ingestor.redis.aclose()
    return rate(total, elapsed)


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with private_redis() as redis:
        blaster = ServerProcess("blast", THROUGHPUT_TICKS)
        try:
            results["bare_receive_parse_per_s"] = asyncio.run(
                bare_receive_and_parse(blaster, THROUGHPUT_TICKS)
            )
            results["publisher_alone_per_s"] = asyncio.run(
                publisher_alone(redis.url, THROUGHPUT_TICKS * 2)
            )
            # The live ingestor continues each symbol after its stream's newest trade: start
            # from empty streams, or the frames' ids look like a corrupt jump from those ticks.
            sync_redis.Redis.from_url(redis.url).flushall()
            settings = bench_settings(redis.url, blaster.base)
            throughput = asyncio.run(ingest(settings, blaster, THROUGHPUT_TICKS * 2, latency=False))
        finally:
            blaster.stop()
        results["ingestor_ticks_per_s"] = throughput["ticks_per_s"]
        results["ingestor_batches"] = throughput["batches"]
        sync_redis.Redis.from_url(redis.url).flushall()
        pacer = ServerProcess("paced", LATENCY_RATE * LATENCY_SECONDS)
        try:
            settings = bench_settings(redis.url, pacer.base)
            latency = asyncio.run(
                ingest(settings, pacer, LATENCY_RATE * LATENCY_SECONDS, latency=True)
            )
        finally:
            pacer.stop()
    results.update({f"latency_at_{LATENCY_RATE}_per_s_{k}": v for k, v in latency.items()})
    for name, value in results.items():
        print(
            f"   {name:40s} {value:>12,.3f}"
            if isinstance(value, float)
            else f"   {name:40s} {value:>12,}"
        )
    return results
