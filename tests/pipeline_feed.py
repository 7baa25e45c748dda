"""A Binance-format trade feed in a process of its own, for whole-pipeline tests and benchmarks.

It serves the tests' `BinanceServer` (Binance's URL layout and `@trade` message format) and,
once told a rate, sends live trades on every symbol's connections, round robin, ids counting up
by one per symbol, `T` = the wall clock, prices and sizes from the recorded data. Like Binance
it broadcasts: a trade is delivered to the connections open when it is sent, and a trade sent
while nobody listens (or while the feed is stalled) is gone; its id is used all the same, so
the client sees a gap.

The parent drives it over a pipe: `rate`, `drop` (close every connection, as Binance does),
`stall` (keep the connections open, send nothing), and `report`: for each symbol the ids
delivered (as ranges) and, for each batch written, its send time (`time.perf_counter`, the
system's monotonic clock, so other processes on the machine can compare) and id range.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from tests.ingestor_support import BinanceServer, LocalBases, wire_frame
from tests.recorded import market_trades

FIRST_ID = 7_000_000_001
TICK_S = 0.002
"""The sender wakes this often and writes what is due since its last wake-up."""


@dataclass
class Delivered:
    """What one symbol's connections were sent."""

    ranges: list[list[int]] = field(default_factory=list)
    """Delivered ids as [first, last] ranges, in order."""
    batches: list[tuple[float, int, int]] = field(default_factory=list)
    """(perf_counter at write, first id, last id) per write."""

    def add(self, at: float, first: int, last: int) -> None:
        if self.ranges and self.ranges[-1][1] == first - 1:
            self.ranges[-1][1] = last
        else:
            self.ranges.append([first, last])
        self.batches.append((at, first, last))


class Prices:
    """Recorded (price, size) text pairs of one symbol, cycled."""

    def __init__(self, symbol: str) -> None:
        rows = [row for row in market_trades() if row.symbol == symbol]
        if not rows:
            rows = [row for row in market_trades() if row.symbol == "BTCUSDT"]
        self.rows = [(row.price, row.size) for row in rows]
        self.position = 0

    def take(self) -> tuple[str, str]:
        row = self.rows[self.position]
        self.position = (self.position + 1) % len(self.rows)
        return row


def trade_frame(symbol: str, trade_id: int, ts: int, price: str, size: str) -> bytes:
    """A `@trade` event exactly as Binance sends it (field order included)."""
    return (
        b'{"e":"trade","E":%d,"T":%d,"s":"%s","t":%d,"p":"%s","q":"%s","X":"MARKET","m":%s}'
        % (ts + 2, ts, symbol.encode(), trade_id, price.encode(), size.encode(),
           b"true" if trade_id % 3 == 0 else b"false")
    )  # fmt: skip


class Sender:
    """The feed's state inside the server process."""

    def __init__(self, server: BinanceServer, symbols: Sequence[str]) -> None:
        self.server = server
        self.symbols = list(symbols)
        self.next_id = dict.fromkeys(self.symbols, FIRST_ID)
        self.prices = {s: Prices(s) for s in self.symbols}
        self.delivered = {s: Delivered() for s in self.symbols}
        self.rate = 0.0
        self.stalled_until = 0.0
        self.owed = 0.0
        self.sent = 0
        self.turn = 0

    async def run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            self.owed += (now - last) * self.rate
            last = now
            due = int(self.owed)
            if due:
                self.owed -= due
                self.send(due, stalled=now < self.stalled_until)
                await self.drain()

    def send(self, count: int, *, stalled: bool) -> None:
        per_symbol = dict.fromkeys(self.symbols, 0)
        for _ in range(count):
            per_symbol[self.symbols[self.turn % len(self.symbols)]] += 1
            self.turn += 1
        ts = time.time_ns() // 1_000_000
        for symbol, n in per_symbol.items():
            if not n:
                continue
            first = self.next_id[symbol]
            self.next_id[symbol] = first + n
            listeners = [] if stalled else self._open(symbol)
            if not listeners:
                continue
            prices = self.prices[symbol]
            frames = [
                wire_frame(trade_frame(symbol, first + k, ts, *prices.take())) for k in range(n)
            ]
            payload = b"".join(frames)
            for connection in listeners:
                connection.transport.write(payload)
            self.delivered[symbol].add(time.perf_counter(), first, first + n - 1)
            self.sent += n

    def _open(self, symbol: str) -> list[ServerConnection]:
        """The connections a trade sent now reaches: not those closing (a frame after the
        close frame is never read)."""
        stream = f"{symbol.lower()}@trade"
        return [c for c in self.server.listeners(stream) if c.state is State.OPEN]

    async def drain(self) -> None:
        """Back off while a client's socket buffer is full, as a real server's would fill."""
        for symbol in self.symbols:
            for connection in self.server.listeners(f"{symbol.lower()}@trade"):
                while connection.transport.get_write_buffer_size() > 8 * 1024 * 1024:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)

    def report(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "next_id": dict(self.next_id),
            "delivered": {s: {"ranges": d.ranges, "batches": d.batches}
                          for s, d in self.delivered.items()},
            "connects": len(self.server.connects),
        }  # fmt: skip


def serve(pipe: Connection, symbols: Sequence[str]) -> None:
    asyncio.run(_serve(pipe, symbols))


async def _serve(pipe: Connection, symbols: Sequence[str]) -> None:
    loop = asyncio.get_running_loop()
    async with BinanceServer() as server:
        sender = Sender(server, symbols)
        task = asyncio.create_task(sender.run())
        pipe.send(server.port)
        while True:
            command, argument = await loop.run_in_executor(None, pipe.recv)
            if command == "stop":
                break
            if command == "rate":
                sender.rate = float(argument)
                sender.owed = 0.0
                reply: Any = "ok"
            elif command == "drop":
                for symbol in sender.symbols:
                    await server.drop(f"{symbol.lower()}@trade")
                reply = "ok"
            elif command == "stall":
                sender.stalled_until = time.perf_counter() + float(argument)
                reply = "ok"
            elif command == "connections":
                reply = {s: server.connection_count(f"{s.lower()}@trade") for s in sender.symbols}
            elif command == "report":
                reply = orjson.dumps(sender.report())
            else:
                reply = f"unknown command {command!r}"
            pipe.send(reply)
        task.cancel()


class Feed(LocalBases):
    """The feed process, driven from the test or benchmark."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = [s.upper() for s in symbols]
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, self.symbols), daemon=True)
        self.process.start()
        if not self.pipe.poll(30):
            raise RuntimeError("the feed process did not start")
        self.port: int = self.pipe.recv()

    def _ask(self, command: str, argument: Any = None) -> Any:
        self.pipe.send((command, argument))
        if not self.pipe.poll(30):
            raise RuntimeError(f"the feed did not answer {command!r}")
        return self.pipe.recv()

    def set_rate(self, ticks_per_s: float) -> None:
        """Trades per second over all symbols (0 pauses)."""
        self._ask("rate", ticks_per_s)

    def drop(self) -> None:
        self._ask("drop")

    def stall(self, seconds: float) -> None:
        self._ask("stall", seconds)

    def connections(self) -> dict[str, int]:
        return dict(self._ask("connections"))

    def report(self) -> dict[str, Any]:
        return dict(orjson.loads(self._ask("report")))

    def delivered_ids(self) -> dict[str, set[int]]:
        ranges = self.report()["delivered"]
        return {
            s: {i for first, last in ranges[s]["ranges"] for i in range(first, last + 1)}
            for s in self.symbols
        }

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.pipe.send(("stop", None))
            except (BrokenPipeError, OSError):
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
