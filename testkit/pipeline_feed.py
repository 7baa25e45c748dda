"""A Binance-format trade feed in a process of its own, for whole-pipeline tests and benchmarks.

It serves the tests' `BinanceServer` (Binance's routed URL layout and `@trade` message format)
and, beside it, the `RestServer` (Binance's REST endpoints) on the same `Exchange`: every trade
the feed makes can be fetched back, so SQLite can be compared with the truth. Once told a rate,
it sends live trades on every symbol's connections, round robin, ids counting up by one per
symbol, `T` = the wall clock, prices and sizes from the recorded data, in taker orders of one
to four trades at one price (so that aggregate trades span several ids). Like Binance it
broadcasts: a trade is delivered to the connections open when it is sent, and a trade sent
while nobody listens (or while the feed is stalled) is gone; its id is used all the same, so
the client sees a gap.

The parent drives it over a pipe: `rate`, `drop` (close every connection, as Binance does, or
one symbol's), `stall` (keep the connections open, send nothing), `lag` (hold one symbol's
trades for a while, then send them all: a connection that falls behind and catches up), and
`report`: for each symbol the ids delivered (as ranges) and, for each batch written, its send
time (`time.perf_counter`, the system's monotonic clock, so other processes on the machine can
compare) and id range; `truth` gives every trade made.
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

from testkit.binance_rest import RestServer
from testkit.binance_ws import BinanceServer, LocalBases, wire_frame
from testkit.exchange import Exchange
from testkit.recorded import market_trades

FIRST_ID = 7_000_000_001
TICK_S = 0.002
"""The sender wakes this often and writes what is due since its last wake-up."""
ORDER_SIZES = (1, 2, 1, 3, 1, 4, 2, 1)
"""Trades per taker order, cycled: consecutive trades of one order share price, side and time."""


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


def trade_frame(symbol: str, trade_id: int, ts: int, price: str, size: str, maker: bool) -> bytes:
    """A `@trade` event exactly as Binance sends it (field order included)."""
    return (
        b'{"e":"trade","E":%d,"T":%d,"s":"%s","t":%d,"p":"%s","q":"%s","X":"MARKET","m":%s}'
        % (ts + 2, ts, symbol.encode(), trade_id, price.encode(), size.encode(),
           b"true" if maker else b"false")
    )  # fmt: skip


class Sender:
    """The feed's state inside the server process."""

    def __init__(self, server: BinanceServer, symbols: Sequence[str]) -> None:
        self.server = server
        self.exchange = server.exchange
        self.symbols = list(symbols)
        self.prices = {s: Prices(s) for s in self.symbols}
        self.delivered = {s: Delivered() for s in self.symbols}
        self.order: dict[str, tuple[int, str, bool]] = {}
        """Per symbol: trades left in the current taker order, its price and side."""
        self.orders = 0
        self.rate = 0.0
        self.stalled_until = 0.0
        self.lagging: dict[str, float] = {}
        self.held: dict[str, list[tuple[bytes, int, int]]] = {s: [] for s in self.symbols}
        self.owed = 0.0
        self.sent = 0
        self.turn = 0

    @property
    def next_id(self) -> dict[str, int]:
        return {s: self.exchange.book(s).next_id for s in self.symbols}

    def _trade(self, symbol: str, ts: int) -> bytes:
        left, price, maker = self.order.get(symbol, (0, "", False))
        recorded_price, size = self.prices[symbol].take()
        if left == 0:
            left = ORDER_SIZES[self.orders % len(ORDER_SIZES)]
            self.orders += 1
            price, maker = recorded_price, self.orders % 3 == 0
        self.order[symbol] = (left - 1, price, maker)
        trade = self.exchange.trade(symbol, price, size, ts, buyer_maker=maker)
        return trade_frame(symbol, trade.id, ts, price, size, maker)

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
        now = time.perf_counter()
        for symbol, n in per_symbol.items():
            if not n:
                continue
            first = self.exchange.book(symbol).next_id
            payload = b"".join(wire_frame(self._trade(symbol, ts)) for _ in range(n))
            if now < self.lagging.get(symbol, 0.0):
                self.held[symbol].append((payload, first, first + n - 1))
                continue
            self._flush_held(symbol, stalled=stalled)
            self._write(symbol, payload, first, first + n - 1, stalled=stalled)

    def _flush_held(self, symbol: str, *, stalled: bool) -> None:
        for payload, first, last in self.held[symbol]:
            self._write(symbol, payload, first, last, stalled=stalled)
        self.held[symbol].clear()

    def _write(self, symbol: str, payload: bytes, first: int, last: int, *, stalled: bool) -> None:
        listeners = [] if stalled else self._open(symbol)
        if not listeners:
            return
        for connection in listeners:
            connection.transport.write(payload)
        self.delivered[symbol].add(time.perf_counter(), first, last)
        self.sent += last - first + 1

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

    def truth(self) -> dict[str, Any]:
        """Every trade made, per symbol: (id, qty, time) as JSON-friendly lists."""
        found: dict[str, Any] = {}
        for symbol in self.symbols:
            book = self.exchange.book(symbol)
            found[symbol] = {
                "first_id": book.first_id,
                "qtys": book.qtys,
                "times": book.times.tolist(),
            }
        return found


def serve(pipe: Connection, symbols: Sequence[str], api_key: str) -> None:
    asyncio.run(_serve(pipe, symbols, api_key))


async def _serve(pipe: Connection, symbols: Sequence[str], api_key: str) -> None:
    loop = asyncio.get_running_loop()
    exchange = Exchange(first_id=FIRST_ID)
    async with (
        BinanceServer(exchange=exchange) as server,
        RestServer(exchange, api_key=api_key) as rest,
    ):
        sender = Sender(server, symbols)
        for symbol in symbols:
            exchange.book(symbol)
        task = asyncio.create_task(sender.run())
        pipe.send((server.port, rest.port))
        while True:
            command, argument = await loop.run_in_executor(None, pipe.recv)
            if command == "stop":
                break
            if command == "rate":
                sender.rate = float(argument)
                sender.owed = 0.0
                reply: Any = "ok"
            elif command == "drop":
                for symbol in argument or sender.symbols:
                    await server.drop(f"{symbol.lower()}@trade")
                reply = "ok"
            elif command == "lag":
                symbol, seconds = argument
                sender.lagging[symbol] = time.perf_counter() + float(seconds)
                reply = "ok"
            elif command == "truth":
                reply = orjson.dumps(sender.truth())
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
    """The feed process, driven from the test or benchmark. `api_key`: the key its REST server
    wants for `historicalTrades` (any non-empty key when empty)."""

    def __init__(self, symbols: Sequence[str], api_key: str = "") -> None:
        self.symbols = [s.upper() for s in symbols]
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child, self.symbols, api_key), daemon=True
        )
        self.process.start()
        if not self.pipe.poll(30):
            raise RuntimeError("the feed process did not start")
        self.port, self.rest_port = self.pipe.recv()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def _ask(self, command: str, argument: Any = None) -> Any:
        self.pipe.send((command, argument))
        if not self.pipe.poll(30):
            raise RuntimeError(f"the feed did not answer {command!r}")
        return self.pipe.recv()

    def set_rate(self, ticks_per_s: float) -> None:
        """Trades per second over all symbols (0 pauses)."""
        self._ask("rate", ticks_per_s)

    def drop(self, *symbols: str) -> None:
        """Close the connections of `symbols` (all symbols when none is given)."""
        self._ask("drop", [s.upper() for s in symbols])

    def lag(self, symbol: str, seconds: float) -> None:
        """Hold `symbol`'s trades for `seconds`, then send them all at once."""
        self._ask("lag", (symbol.upper(), seconds))

    def truth(self) -> dict[str, Any]:
        """Every trade the feed made: per symbol `first_id`, `qtys`, `times` (index = id -
        first_id)."""
        return dict(orjson.loads(self._ask("truth")))

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
