"""A local Binance USD-M Futures stream server on 127.0.0.1, and frames built from recorded data.

`BinanceServer` speaks Binance's format and URL layout, routing included, strictly:
`<host><path>/ws/<symbol>@<stream>` and `<host><path>/stream?streams=a/b` (with the
`{"stream","data"}` envelope), where `<path>` is `/public`, `/market`, `/private` or nothing.
`@trade` is delivered only on `/public` and `@aggTrade` only on `/market` (`ROUTES`); on any
other path, unrouted included, a stream connects and then gets nothing, as Binance does. Like
Binance, it broadcasts: a frame goes to the connections open on its stream when it is sent, and
a client that was not connected then never sees it. Tests drive it: send frames, drop
connections, go silent, ping. `publish` adds trades to the `Exchange` the REST server serves
too, then broadcasts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from testkit.exchange import Exchange, Trade, agg_event
from testkit.recorded import RecordedTrade

PATHS = ("/public", "/market", "/private")
ROUTES = {"trade": "/public", "aggTrade": "/market"}
"""Stream kind -> the only path that delivers it."""


def frame_bytes(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def trade_event(
    symbol: str, trade_id: int, ts: int, price: str, size: str, *, maker: bool = False,
    execution: str = "MARKET",
) -> dict[str, Any]:  # fmt: skip
    """A raw `@trade` event exactly as Binance sends it (field order included)."""
    return {
        "e": "trade", "E": ts + 3, "T": ts, "s": symbol, "t": trade_id, "p": price, "q": size,
        "X": execution, "m": maker,
    }  # fmt: skip


@dataclass(frozen=True)
class RecordedFrames:
    """The recorded trades as the `@trade` frames Binance sent, per symbol, with their ids."""

    frames: dict[str, list[bytes]]
    market_ids: dict[str, list[int]]
    first_id: dict[str, int]

    def market_count(self, symbol: str) -> int:
        return len(self.market_ids[symbol])


def recorded_frames(rows: Sequence[RecordedTrade], first_id: int = 6_905_373_851) -> RecordedFrames:
    """Frames for recorded rows: ids count up by one per symbol (NA prints take an id too, as
    live ones do), NA rows (price 0) carry `X: "NA"`, the maker flag alternates."""
    frames: dict[str, list[bytes]] = defaultdict(list)
    market_ids: dict[str, list[int]] = defaultdict(list)
    next_id: dict[str, int] = {}
    for index, row in enumerate(rows):
        trade_id = next_id.get(row.symbol, first_id)
        next_id[row.symbol] = trade_id + 1
        market = Decimal(row.price) > 0
        event = trade_event(
            row.symbol, trade_id, row.ts, row.price, row.size, maker=index % 2 == 0,
            execution="MARKET" if market else "NA",
        )  # fmt: skip
        frames[row.symbol].append(frame_bytes(event))
        if market:
            market_ids[row.symbol].append(trade_id)
    return RecordedFrames(dict(frames), dict(market_ids), dict.fromkeys(frames, first_id))


def make_trades(
    exchange: Exchange, symbol: str, count: int, start_ts: int, *,
    orders: Sequence[int] = (1, 3, 1, 2, 4), price: float = 100.0,
) -> list[Trade]:  # fmt: skip
    """`count` new trades of `symbol` on the exchange, in taker orders of the given sizes
    (cycled): the trades of one order share time, price and side, so they aggregate."""
    made: list[Trade] = []
    order = 0
    while len(made) < count:
        size = orders[order % len(orders)]
        ts = start_ts + order * 7
        order_price = f"{price + (order % 9) * 0.1:.1f}"
        for _ in range(min(size, count - len(made))):
            qty = f"0.{(len(made) * 37) % 900 + 100:03d}"
            made.append(exchange.trade(symbol, order_price, qty, ts, buyer_maker=order % 2 == 1))
        order += 1
    return made


def wire_frame(payload: bytes) -> bytes:
    """One unmasked server-to-client text frame (RFC 6455 5.2), ready for the socket."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65_536:
        return bytes((0x81, 126)) + struct.pack("!H", size) + payload
    return bytes((0x81, 127)) + struct.pack("!Q", size) + payload


class LocalBases:
    """The URL of a local Binance-format server listening on 127.0.0.1:`port`."""

    port: int

    @property
    def base(self) -> str:
        """The host, what `BINANCE_WS_URL` points at."""
        return f"ws://127.0.0.1:{self.port}"


def stream_kind(stream: str) -> str:
    """`btcusdt@trade` -> `trade`."""
    return stream.partition("@")[2]


@dataclass
class BinanceServer(LocalBases):
    """The server. Use as `async with BinanceServer() as server:`."""

    routes: dict[str, str] = field(default_factory=lambda: dict(ROUTES))
    """Stream kind -> the path that delivers it (tests may move a kind elsewhere)."""
    silent_paths: set[str] = field(default_factory=set)
    """Paths that accept connections and never send anything, whatever they carry."""
    refused_paths: set[str] = field(default_factory=set)
    """Paths that answer the handshake with HTTP 404."""
    exchange: Exchange = field(default_factory=Exchange)
    port: int = 0
    open: dict[str, list[ServerConnection]] = field(default_factory=lambda: defaultdict(list))
    connects: list[str] = field(default_factory=list)
    muted: set[str] = field(default_factory=set)
    _server: Server | None = None
    _changed: asyncio.Condition | None = None

    async def __aenter__(self) -> BinanceServer:
        self._changed = asyncio.Condition()
        self._server = await serve(
            self._handle, "127.0.0.1", self.port, process_request=self._check,
            compression=None, max_size=2**20,
        )  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        path, streams = split_path(request.path)
        if streams is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown path\n")
        if path in self.refused_paths:
            return connection.respond(HTTPStatus.NOT_FOUND, "not routed here\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        base, streams = split_path(connection.request.path if connection.request else "")
        assert streams is not None
        names = [f"{base}|{name}" for name in streams]
        self.connects.append(connection.request.path if connection.request else "")
        for name in names:
            self.open[name].append(connection)
        await self._notify()
        try:
            await connection.wait_closed()
        finally:
            for name in names:
                self.open[name].remove(connection)
            await self._notify()

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def delivers(self, path: str, stream: str) -> bool:
        """Whether a connection on `path` gets `stream` (`btcusdt@trade`)."""
        return path == self.routes.get(stream_kind(stream)) and path not in self.silent_paths

    def listeners(self, stream: str) -> list[ServerConnection]:
        """Open connections that receive `stream` (`btcusdt@trade`): those on its route."""
        found: list[ServerConnection] = []
        for name, connections in self.open.items():
            path, _, name_stream = name.partition("|")
            if name_stream == stream and self.delivers(path, stream):
                found += [c for c in connections if c not in found]
        return found

    def connection_count(self, stream: str) -> int:
        return sum(len(c) for name, c in self.open.items() if name.endswith(f"|{stream}"))

    async def wait_for(
        self, stream: str, count: int = 1, *, exactly: bool = False, within: float = 10.0
    ) -> None:
        """Until at least (or `exactly`) `count` connections are open on `stream`."""
        assert self._changed is not None

        def ready() -> bool:
            open_now = self.connection_count(stream)
            return open_now == count if exactly else open_now >= count

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(ready), within)

    async def wait_for_connects(self, count: int, within: float = 10.0) -> None:
        """Until `count` connections in all have been opened since the start."""
        assert self._changed is not None
        async with self._changed:
            done = self._changed.wait_for(lambda: len(self.connects) >= count)
            await asyncio.wait_for(done, within)

    async def publish(self, symbol: str, trades: Sequence[Trade]) -> int:
        """Trades already added to `exchange`, broadcast as `@trade` events (and their
        aggregates as `@aggTrade` events when someone listens to those); how many listeners."""
        name = symbol.lower()
        count = await self.send(f"{name}@trade", [frame_bytes(t.event(symbol)) for t in trades])
        if self.listeners(f"{name}@aggTrade") and trades:
            book = self.exchange.book(symbol)
            first = book.aggregate_of(trades[0].id)
            last = book.aggregate_of(trades[-1].id)
            if first is not None and last is not None:
                events = [
                    frame_bytes(agg_event(book.aggregate(k), symbol))
                    for k in range(first, last + 1)
                ]
                count += await self.send(f"{name}@aggTrade", events)
        return count

    async def send(self, stream: str, frames: Iterable[bytes], *, combined: bool = False) -> int:
        """Broadcast frames to the listeners of `stream`, in order; how many listeners.

        `combined=True` wraps each frame in the `{"stream","data"}` envelope. A listener that
        closes meanwhile (a client renewing its connection) just stops receiving, as on the
        exchange: the broadcast goes on to the others.
        """
        if stream in self.muted:
            return 0
        listeners = self.listeners(stream)
        for raw in frames:
            text = raw.decode()
            if combined:
                text = f'{{"stream":"{stream}","data":{text}}}'
            for connection in listeners:
                with contextlib.suppress(ConnectionClosed):
                    await connection.send(text)
        return len(listeners)

    async def send_raw(self, stream: str, frames: Iterable[bytes | str]) -> None:
        """Send exactly these messages (malformed ones included) to the listeners of `stream`."""
        for connection in self.listeners(stream):
            for raw in frames:
                await connection.send(
                    raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                )

    async def send_messages(self, stream: str, messages: Iterable[bytes | str]) -> None:
        """Send each message as it is: text as a text frame, bytes as a binary frame (bytes
        that are not UTF-8 can only travel in a binary frame)."""
        for connection in self.listeners(stream):
            for message in messages:
                await connection.send(message)

    async def blast(self, connection: ServerConnection, frames: Sequence[bytes]) -> None:
        """Write pre-framed messages straight to the socket, as fast as it takes them (for
        benchmarks: no per-message cost on the server side)."""
        transport = connection.transport
        for start in range(0, len(frames), 512):
            transport.write(b"".join(wire_frame(f) for f in frames[start : start + 512]))
            # Flow control by polling: the transport has no awaitable drain of its own here.
            while transport.get_write_buffer_size() > 4 * 1024 * 1024:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)

    async def drop(self, stream: str, code: int = 1001, reason: str = "going away") -> None:
        """Close every connection on `stream`, as Binance does (24 h limit, maintenance)."""
        for connection in list(self.listeners(stream)):
            await connection.close(code, reason)

    async def ping_all(self, stream: str) -> list[float]:
        """Ping every listener of `stream` and wait for the pongs: their latencies."""
        waiters = [await c.ping() for c in self.listeners(stream)]
        return [await asyncio.wait_for(w, 5.0) for w in waiters]


def split_path(path: str) -> tuple[str, list[str] | None]:
    """`/public/ws/btcusdt@trade` -> ('/public', ['btcusdt@trade']), `/ws/x@trade` -> ('', ...);
    None for an unknown path."""
    base = next((p for p in PATHS if path.startswith(f"{p}/")), "")
    rest = path[len(base) :]
    if rest.startswith("/ws/") and len(rest) > 4:
        return base, [rest[4:]]
    if rest.startswith("/stream?streams="):
        names = [n for n in rest[len("/stream?streams=") :].split("/") if n]
        return base, names or None
    return base, None
