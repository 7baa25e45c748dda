"""The live source: one WebSocket per symbol to `<base>/ws/<symbol>@trade`, kept alive forever.

Connection life, per symbol (`SymbolFeed.run`):
- reconnect on any drop, after an exponential backoff with jitter (capped at
  `BINANCE_RECONNECT_MAX_S`), reset once a connection has delivered frames;
- a watchdog closes a connection that received nothing for `BINANCE_STALE_TIMEOUT_S`;
- a base that stays silent (or refuses the stream) `BINANCE_FALLBACK_AFTER` times in a row is
  swapped for the other one (`BINANCE_LEGACY_WS_URL`), and the base that delivers is reported;
- before Binance's 24 h cut-off (`BINANCE_MAX_AGE_S`) a second connection is opened and the
  first is closed once the second has caught up, so the renewal loses no trade;
- pings are answered by the websockets library; every connect, disconnect and stale
  connection goes to `events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from services.ingestor.binance import (
    FrameError,
    NonMarketPrint,
    StreamKind,
    TickRow,
    parse_frame,
    stream_url,
)
from services.ingestor.intake import Intake
from services.ingestor.recorder import Recorder
from shared.config import Settings

log = logging.getLogger(__name__)

YIELD_EVERY = 128
"""Frames read before the reader lets the event loop run others: `recv()` returns buffered
frames without suspending, so under a flood the reader would keep the publisher from its turn
(a 40,000/s flood once cut publishing to 8,500/s while the queue overflowed)."""
MAX_AHEAD_MS = 60_000
"""A live trade stamped further ahead of the local clock than this is refused (dead letter): one
bad timestamp would otherwise move the analytics event clock past every real trade to come."""

MAX_MESSAGE_BYTES = 1024 * 1024
"""The websockets library closes a connection that sends a bigger message (code 1009).
Frames between 64 KiB and this size are dead-lettered and the connection carries on."""
CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException)
HANDOVER_POLL_S = 0.01


@dataclass(frozen=True)
class FeedOptions:
    """The connection policy, from settings."""

    bases: tuple[str, ...]
    stream: StreamKind
    stale_s: float
    fallback_after: int
    backoff_base_s: float
    backoff_max_s: float
    max_age_s: float
    open_timeout_s: float = 10.0
    ping_interval_s: float = 20.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedOptions:
        bases: tuple[str, ...] = (settings.binance_ws_url,)
        legacy = settings.binance_legacy_ws_url
        if legacy and legacy != settings.binance_ws_url:
            bases += (legacy,)
        return cls(
            bases=bases,
            stream=settings.binance_stream,
            stale_s=settings.binance_stale_timeout_s,
            fallback_after=settings.binance_fallback_after,
            backoff_base_s=settings.binance_reconnect_base_s,
            backoff_max_s=settings.binance_reconnect_max_s,
            max_age_s=settings.binance_max_age_s,
            open_timeout_s=min(10.0, max(1.0, settings.binance_stale_timeout_s)),
        )


def backoff_delays(
    base_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> Callable[[bool], float]:
    """A function `next_delay(reset)`: exponential from `base_s`, capped at `max_s`, with
    jitter (each delay is drawn between half and all of the current step); `reset=True` after
    a good connection starts again from `base_s`."""
    step = base_s

    def next_delay(reset: bool) -> float:
        nonlocal step
        if reset:
            step = base_s
        delay = step * (0.5 + 0.5 * rng())
        step = min(step * 2, max_s)
        return delay

    return next_delay


def _trade_id(parsed: TickRow | NonMarketPrint) -> int:
    return parsed.trade_id if isinstance(parsed, NonMarketPrint) else parsed[4]


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _Ended(Exception):
    """How a connection ended, when the feed itself ended it."""


class SymbolFeed:
    """One symbol's connection, reconnected until `stop` is set."""

    def __init__(
        self,
        symbol: str,
        options: FeedOptions,
        intake: Intake,
        stop: asyncio.Event,
        recorder: Recorder | None = None,
    ) -> None:
        self.symbol = symbol
        self.options = options
        self.stop = stop
        self.frames = 0
        self.attempts = 0
        self._intake = intake
        self._state = intake.state(symbol)
        self._notices = intake.notices
        self._symbols = frozenset({symbol})
        self._recorder = recorder
        self._ws: ClientConnection | None = None
        self._ending = ""
        self._stale = False
        self._successor: tuple[ClientConnection, list[tuple[bytes, int]]] | None = None
        self._base_index = 0

    @property
    def connects(self) -> int:
        return self._state.connects

    @property
    def base(self) -> str:
        return self.options.bases[self._base_index]

    async def run(self) -> None:
        options = self.options
        next_delay = backoff_delays(options.backoff_base_s, options.backoff_max_s)
        silent = 0
        while not self.stop.is_set():
            delivered, was_silent = await self._session(self.base)
            if self.stop.is_set():
                break
            silent = 0 if delivered else silent + int(was_silent)
            if silent >= options.fallback_after and len(options.bases) > 1:
                tried = self.base
                self._base_index = (self._base_index + 1) % len(options.bases)
                self._notices.event(
                    "fallback",
                    f"{tried} gave nothing {silent} times in a row; trying {self.base}",
                    self.symbol,
                )
                silent = 0
            if await self._sleep(next_delay(delivered)):
                break

    async def close(self) -> None:
        """Close the open connection now (the stop flag keeps it from reopening)."""
        ws = self._ws
        if ws is not None:
            self._ending = self._ending or "stopping"
            await ws.close()

    async def _open(self, url: str) -> ClientConnection:
        return await connect(
            url,
            open_timeout=self.options.open_timeout_s,
            ping_interval=self.options.ping_interval_s,
            ping_timeout=self.options.ping_interval_s,
            close_timeout=1.0,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=256,
        )

    async def _session(self, base: str) -> tuple[bool, bool]:
        """One connection's life: (whether it delivered frames, whether it was silent)."""
        url = stream_url(base, self.symbol, self.options.stream)
        self.attempts += 1
        try:
            ws = await self._open(url)
        except CONNECT_ERRORS as exc:
            self._notices.event("connect_failed", f"{url}: {_describe(exc)}", self.symbol)
            return False, isinstance(exc, InvalidStatus)
        frames_before = self.frames
        self._ending, self._stale = "", False
        self._state.connected = True
        self._state.connects += 1
        self._notices.event("connected", url, self.symbol)
        try:
            while True:
                self._ws = ws
                guard = asyncio.create_task(self._guard(ws, base, url))
                try:
                    reason = await self._read(ws, base)
                finally:
                    guard.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await guard
                if self._successor is None:
                    break
                with contextlib.suppress(*CONNECT_ERRORS):
                    await ws.close()
                ws, pending = self._successor
                self._successor = None
                self._take_over(pending)
        finally:
            self._ws = None
            self._state.connected = False
            with contextlib.suppress(*CONNECT_ERRORS):
                await ws.close()
        self._notices.event("disconnected", f"{url}: {self._ending or reason}", self.symbol)
        delivered = self.frames > frames_before
        return delivered, self._stale and not delivered

    async def _read(self, ws: ClientConnection, base: str) -> str:
        """Handle frames until the connection closes; why it closed."""
        handle = self._handle
        try:
            handle(await ws.recv(decode=False), time.time_ns() // 1_000_000)
            self._delivering(base)
            while True:
                for _ in range(YIELD_EVERY):
                    handle(await ws.recv(decode=False), time.time_ns() // 1_000_000)
                await asyncio.sleep(0)
        except ConnectionClosed as exc:
            return _describe(exc)

    def _handle(self, raw: bytes, recv_ts: int) -> None:
        """One frame: the hot path, kept flat."""
        self.frames += 1
        if self._recorder is not None:
            self._recorder.write(raw)
        try:
            parsed = parse_frame(raw, recv_ts, self._symbols)
        except FrameError as exc:
            self._intake.reject(raw, str(exc), self.symbol)
            return
        except Exception as exc:  # a parser bug must not stop the feed: keep the frame
            log.exception("frame the parser did not expect", extra={"symbol": self.symbol})
            self._intake.reject(raw, f"parser error: {exc!r}", self.symbol)
            return
        if isinstance(parsed, NonMarketPrint):
            self._intake.non_market(parsed)
        elif parsed[0] > recv_ts + MAX_AHEAD_MS:
            ahead = parsed[0] - recv_ts
            self._intake.reject(raw, f"trade time {ahead} ms ahead of this clock", self.symbol)
        else:
            self._intake.tick(parsed)

    async def _guard(self, ws: ClientConnection, base: str, url: str) -> None:
        """Watch one connection: stale, stop, first delivery, and the 24 h renewal."""
        loop = asyncio.get_running_loop()
        options = self.options
        opened = last_change = loop.time()
        seen = self.frames
        interval = min(1.0, options.stale_s / 4)
        while True:
            if await self._sleep(interval):
                self._ending = "stopping"
                await ws.close()
                return
            now = loop.time()
            if self.frames != seen:
                seen, last_change = self.frames, now
            elif now - last_change >= options.stale_s:
                self._stale = True
                silence = f"nothing received for {options.stale_s:g} s"
                self._ending = f"stale, {silence}"
                self._notices.event("stale", f"{url}: {silence}", self.symbol)
                await ws.close()
                return
            if now - opened >= options.max_age_s:
                if await self._renew(ws, base):
                    return
                opened = now - options.max_age_s + options.stale_s

    def _delivering(self, base: str) -> None:
        if self._state.base != base:
            self._state.base = base
            self._notices.event(
                "delivering",
                f"{base} delivers {self.symbol.lower()}@{self.options.stream}",
                self.symbol,
            )

    async def _renew(self, old: ClientConnection, base: str) -> bool:
        """Open a second connection, switch once it has caught up with the first; True when
        switched. Trades both delivered are dropped by the sequence check of the switch."""
        url = stream_url(base, self.symbol, self.options.stream)
        try:
            new = await self._open(url)
        except CONNECT_ERRORS as exc:
            self._notices.event("connect_failed", f"renewal {url}: {_describe(exc)}", self.symbol)
            return False
        pending: list[tuple[bytes, int]] = []
        switched = False
        try:
            switched = await self._catch_up(new, pending)
        finally:
            if not switched:
                await new.close()
        if switched:
            self._successor = (new, pending)
            self._ending = "renewed before Binance's 24 h cut-off"
            await old.close()
        return switched

    async def _catch_up(self, new: ClientConnection, pending: list[tuple[bytes, int]]) -> bool:
        """Buffer `new`'s frames until the old connection has reached the first of them (or
        the stale timeout passes); True when `new` delivers and may take over."""
        first_id: list[int] = []

        async def buffer() -> None:
            while True:
                raw = await new.recv(decode=False)
                pending.append((raw, time.time_ns() // 1_000_000))
                if not first_id:
                    with contextlib.suppress(FrameError):
                        first_id.append(_trade_id(parse_frame(raw, 0, self._symbols)))

        reader = asyncio.create_task(buffer())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.options.stale_s
            while loop.time() < deadline and not reader.done() and not self.stop.is_set():
                if first_id and self._state.last_id >= first_id[0] - 1:
                    break
                await asyncio.sleep(HANDOVER_POLL_S)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader
        return bool(pending) and new.close_code is None and not self.stop.is_set()

    def _take_over(self, pending: list[tuple[bytes, int]]) -> None:
        last_id = self._state.last_id
        overlap = 0
        for raw, recv_ts in pending:
            try:
                parsed = parse_frame(raw, recv_ts, self._symbols)
            except FrameError:
                self._handle(raw, recv_ts)
                continue
            if _trade_id(parsed) <= last_id:
                overlap += 1
                continue
            self._handle(raw, recv_ts)
        self._notices.event(
            "renewed",
            f"connection renewed before Binance's 24 h cut-off; {overlap} trades came on both",
            self.symbol,
        )

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        return self.stop.is_set()


class LiveSource:
    """Every configured symbol's feed."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        stop: asyncio.Event,
        recorder: Recorder | None = None,
    ) -> None:
        options = FeedOptions.from_settings(settings)
        self.feeds = [
            SymbolFeed(symbol, options, intake, stop, recorder) for symbol in settings.symbols
        ]
        self._recorder = recorder

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for feed in self.feeds:
                group.create_task(feed.run(), name=f"feed-{feed.symbol}")

    async def close(self) -> None:
        await asyncio.gather(*(feed.close() for feed in self.feeds))
        if self._recorder is not None:
            self._recorder.close()

    def health_fields(self) -> dict[str, int | str]:
        return {}

    @property
    def started(self) -> bool:
        """Every feed has tried to connect at least once."""
        return all(feed.attempts for feed in self.feeds)
