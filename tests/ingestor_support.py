"""A local Binance USD-M Futures stream server on 127.0.0.1, and frames built from recorded data.

`BinanceServer` speaks Binance's format and URL layout: `<base>/ws/<symbol>@trade` (and
`@aggTrade`), `<base>/stream?streams=a@trade/b@trade` with the `{"stream","data"}` envelope,
served under both the routed base `/market` and the legacy root. Like Binance, it broadcasts:
a frame goes to the connections open on its stream when it is sent, and a client that was not
connected then never sees it. Tests drive it: send frames, drop connections, go silent, ping.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any, cast

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from services.ingestor.service import Ingestor
from services.ingestor.state import SymbolState
from shared import keys
from shared.config import Settings, load_settings
from shared.health import Health
from shared.redis_io import Redis
from shared.schemas import Event, Tick
from tests.recorded import RecordedTrade

ROUTED = "/market"


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


def wire_frame(payload: bytes) -> bytes:
    """One unmasked server-to-client text frame (RFC 6455 5.2), ready for the socket."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65_536:
        return bytes((0x81, 126)) + struct.pack("!H", size) + payload
    return bytes((0x81, 127)) + struct.pack("!Q", size) + payload


class LocalBases:
    """The URLs of a local Binance-format server listening on 127.0.0.1:`port`."""

    port: int

    @property
    def base(self) -> str:
        """The routed base, what `BINANCE_WS_URL` points at."""
        return f"ws://127.0.0.1:{self.port}{ROUTED}"

    @property
    def legacy_base(self) -> str:
        """The legacy root, what `BINANCE_LEGACY_WS_URL` points at."""
        return f"ws://127.0.0.1:{self.port}"


@dataclass
class BinanceServer(LocalBases):
    """The server. Use as `async with BinanceServer() as server:`."""

    silent_bases: set[str] = field(default_factory=set)
    """Bases ('/market' or '') that accept connections and never send anything."""
    refused_bases: set[str] = field(default_factory=set)
    """Bases that answer the handshake with HTTP 404."""
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
        base, streams = split_path(request.path)
        if streams is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown path\n")
        if base in self.refused_bases:
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

    def listeners(self, stream: str) -> list[ServerConnection]:
        """Open connections that receive `stream` (`btcusdt@trade`), on bases that send."""
        found: list[ServerConnection] = []
        for name, connections in self.open.items():
            base, _, name_stream = name.partition("|")
            if name_stream == stream and base not in self.silent_bases:
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

    async def send(self, stream: str, frames: Iterable[bytes], *, combined: bool = False) -> int:
        """Broadcast frames to the listeners of `stream`, in order; how many listeners.

        `combined=True` wraps each frame in the `{"stream","data"}` envelope.
        """
        if stream in self.muted:
            return 0
        listeners = self.listeners(stream)
        for raw in frames:
            text = raw.decode()
            if combined:
                text = f'{{"stream":"{stream}","data":{text}}}'
            for connection in listeners:
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
    """`/market/ws/btcusdt@trade` -> ('/market', ['btcusdt@trade']); None for an unknown path."""
    base = ROUTED if path.startswith(f"{ROUTED}/") else ""
    rest = path[len(base) :]
    if rest.startswith("/ws/") and len(rest) > 4:
        return base, [rest[4:]]
    if rest.startswith("/stream?streams="):
        names = [n for n in rest[len("/stream?streams=") :].split("/") if n]
        return base, names or None
    return base, None


def ingestor_settings(
    redis_url: str, server: BinanceServer | None = None, **overrides: Any
) -> Settings:
    """Settings for an ingestor run in a test: a private Redis, the local server, and timeouts
    short enough that reconnects and stale connections take fractions of a second."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "binance_stale_timeout_s": 1.0,
        "binance_reconnect_base_s": 0.05,
        "binance_reconnect_max_s": 0.2,
        "health_interval_s": 0.1,
    }
    if server is not None:
        values.update(binance_ws_url=server.base, binance_legacy_ws_url=server.legacy_base)
    values.update(overrides)
    return load_settings(**values)


@dataclass
class RunningIngestor:
    ingestor: Ingestor
    health: Health
    task: asyncio.Task[None]

    @property
    def counters(self) -> dict[str, Any]:
        self.ingestor._update(self.health)
        return dict(self.health.counters)

    def state(self, symbol: str) -> SymbolState:
        return self.ingestor.intake.states[symbol]


@asynccontextmanager
async def running_ingestor(settings: Settings) -> AsyncIterator[RunningIngestor]:
    """The ingestor in this event loop (the same code `python -m services.ingestor` runs);
    stopped as SIGTERM would stop it when the block ends."""
    stop = asyncio.Event()
    ingestor = Ingestor(settings, stop)
    health = Health("ingestor")
    task = asyncio.create_task(ingestor.serve(health))
    try:
        yield RunningIngestor(ingestor, health, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def eventually(predicate: Callable[[], Awaitable[bool] | bool], within: float = 10.0) -> bool:
    """Poll `predicate` (sync or async) every 20 ms until it holds or `within` seconds pass."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)


async def stream_ticks(redis: Redis, symbol: str) -> list[Tick]:
    """Every entry of `ticks:<symbol>` as `Tick`s, oldest first."""
    return [Tick.from_fields(fields) for fields in await _entries(redis, keys.ticks(symbol))]


async def _entries(redis: Redis, stream: str) -> list[dict[str, str]]:
    """The fields of every entry of `stream`, oldest first (replies are decoded text)."""
    reply = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream))
    return [fields for _, fields in reply]


async def stream_length(redis: Redis, symbol: str) -> int:
    return int(await redis.xlen(keys.ticks(symbol)))


async def has_ticks(redis: Redis, symbol: str, count: int) -> bool:
    """`ticks:<symbol>` holds exactly `count` entries."""
    return await stream_length(redis, symbol) == count


async def events(redis: Redis, kind: str | None = None) -> list[Event]:
    found = [Event.from_fields(fields) for fields in await _entries(redis, keys.EVENTS)]
    return [e for e in found if kind is None or e.kind == kind]


async def dead_letters(redis: Redis) -> list[dict[str, str]]:
    return await _entries(redis, keys.deadletter("ingestor"))
