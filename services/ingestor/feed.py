"""One symbol's live feed: one WebSocket to `<host><route>/ws/<symbol>@<stream>`, forever.

Connection life, per symbol (`SymbolFeed.run`):
- the route comes from the routing table (`routes.py`); a route is left only when REST proves
  it silent (`silence.py`): the connection delivered nothing for `BINANCE_STALE_TIMEOUT_S`
  while the exchange traded. A route that has delivered in this run is kept: silence there is
  a stuck connection, reconnected. Trades REST shows after the last one received are a gap,
  back-filled like any other;
- when REST cannot answer, a silent connection is reconnected, and after
  `BINANCE_FALLBACK_AFTER` of them in a row on a route that never delivered, the next route
  is tried;
- reconnect on any drop, after an exponential backoff with jitter (capped at
  `BINANCE_RECONNECT_MAX_S`), reset once a connection has delivered frames;
- before Binance's 24 h cut-off (`BINANCE_MAX_AGE_S`) a second connection is opened and the
  first is closed once the second has caught up, so the renewal loses no trade;
- pings are answered by the websockets library; every connect, disconnect, silent route and
  route change goes to `events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.ingestor.binance import FrameError, NonMarketPrint, parse_frame
from services.ingestor.connection import (
    CONNECT_ERRORS,
    Closing,
    Ending,
    FeedOptions,
    Successor,
    backoff_delays,
    open_connection,
)
from services.ingestor.intake import Intake
from services.ingestor.probe import Prober
from services.ingestor.recorder import Recorder
from services.ingestor.rest import RestFailure
from services.ingestor.routes import RouteChoice
from services.ingestor.silence import Verdict, judge
from shared.health import now_ms
from shared.times import iso_ms

log = logging.getLogger(__name__)

YIELD_EVERY = 128
"""Frames read before the reader lets the event loop run others: `recv()` returns buffered
frames without suspending, so under a flood the reader would keep the publisher from its turn
(a 40,000/s flood once cut publishing to 8,500/s while the queue overflowed)."""
MAX_AHEAD_MS = 60_000
"""A live trade stamped further ahead of the local clock than this is refused (dead letter): one
bad timestamp would otherwise move the analytics event clock past every real trade to come."""

HANDOVER_POLL_S = 0.01


QUIET_CHECKS_MAX = 8
"""A symbol REST keeps proving quiet is checked ever less often, up to this many stale
timeouts apart (each check costs REST weight)."""


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class SymbolFeed:
    """One symbol's connection, reconnected until `stop` is set or the feed is closed."""

    def __init__(
        self,
        symbol: str,
        options: FeedOptions,
        intake: Intake,
        stop: asyncio.Event,
        prober: Prober | None,
        recorder: Recorder | None = None,
    ) -> None:
        self.symbol = symbol
        self.options = options
        self.stop = stop
        self.frames = 0
        self.attempts = 0
        self.route = RouteChoice(options.endpoint.candidates(options.stream))
        self.quiet_checks = 0
        self._intake = intake
        self._state = intake.state(symbol)
        self._notices = intake.notices
        self._symbols = frozenset({symbol})
        self._prober = prober
        self._recorder = recorder
        self._ws: ClientConnection | None = None
        self._closed: str | None = None
        """Why `close` was called (the `disconnected` event's words), None until it is."""

    @property
    def connects(self) -> int:
        return self._state.connects

    @property
    def stream_name(self) -> str:
        return f"{self.symbol.lower()}@{self.options.stream}"

    @property
    def url(self) -> str:
        return self.options.endpoint.url(self.route.path, self.symbol, self.options.stream)

    @property
    def problem(self) -> str:
        """Why this symbol is not fine, or empty."""
        if self.route.everywhere_silent:
            other = "aggTrade" if self.options.stream == "trade" else "trade"
            return (
                f"{self.symbol}: {self.options.stream} stream silent on every route; "
                f"set BINANCE_STREAM={other}"
            )
        return "" if self._state.connected else f"{self.symbol} disconnected"

    async def run(self) -> None:
        options = self.options
        next_delay = backoff_delays(options.reconnect_base_s, options.reconnect_max_s)
        while not self._ending():
            delivered, moved = await self._session()
            if self._ending():
                break
            if moved:
                continue
            if await self._sleep(next_delay(delivered)):
                break

    async def close(self, detail: str = "stopping") -> None:
        """Close the open connection now and open no other; `detail` says why, in the
        connection's `disconnected` event (whether or not `stop` is set)."""
        self._closed = detail
        ws = self._ws
        if ws is not None:
            await ws.close()

    def _ending(self) -> bool:
        return self.stop.is_set() or self._closed is not None

    async def _session(self) -> tuple[bool, bool]:
        """One connection's life: (whether it delivered frames, whether the route changed).

        connecting -> open -> closed, where open may pass to a renewed connection any number
        of times. This task alone moves between the states: the guard only decides (and
        prepares the successor), returning a `Closing`.
        """
        url = self.url
        self.attempts += 1
        route_before = self.route.index
        try:
            ws = await open_connection(url, self.options)
        except CONNECT_ERRORS as exc:
            self._notices.event("connect_failed", f"{url}: {_describe(exc)}", self.symbol)
            if isinstance(exc, InvalidStatus):
                self._route_refused(url, exc)
            return False, self.route.index != route_before
        if self._closed is not None:  # closed while connecting: `close` had nothing to close
            with contextlib.suppress(*CONNECT_ERRORS):
                await ws.close()
            return False, False
        frames_before = self.frames
        self._intake.connection_opened(self.symbol)
        self._notices.event("connected", url, self.symbol)
        try:
            while True:
                self._ws = ws
                closing = await self._watch(ws, url)
                if closing.successor is None:
                    break
                ws = closing.successor.connection
                self._take_over(closing.successor.pending)
        finally:
            self._ws = None
            self._intake.connection_closed(self.symbol)
            with contextlib.suppress(*CONNECT_ERRORS):
                await ws.close()
        self._notices.event("disconnected", f"{url}: {closing.detail}", self.symbol)
        delivered = self.frames > frames_before
        limit = self.options.fallback_after
        stale = closing.ending is Ending.STALE
        if stale and not delivered and self.route.unproven_silence(limit):
            self._route_changed(
                f"{self.options.fallback_after} silent connections in a row that REST could "
                "not judge"
            )
        return delivered, self.route.index != route_before

    def _route_refused(self, url: str, exc: InvalidStatus) -> None:
        """A path the server refuses (HTTP 404 at the handshake) cannot be the route."""
        if self.route.delivered:
            return
        refused = self.route.label
        self._notices.event("route_silent", f"{url}: refused ({_describe(exc)})", self.symbol)
        self.route.proven_silent()
        self._route_changed(f"{refused} was refused")

    def _route_changed(self, why: str) -> None:
        self._notices.event(
            "route_changed",
            f"{self.stream_name}: trying {self.route.label} ({why})",
            self.symbol,
        )
        if self.route.everywhere_silent:
            log.error(self.problem)

    async def _watch(self, ws: ClientConnection, url: str) -> Closing:
        """Read `ws` while its guard watches it, until one of them ends it: how it ended."""
        reader = asyncio.create_task(self._read(ws))
        guard = asyncio.create_task(self._guard(url))
        try:
            await asyncio.wait((reader, guard), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not guard.done():
                guard.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await guard
            if not reader.done():
                with contextlib.suppress(*CONNECT_ERRORS):
                    await ws.close()
                await reader
        if not guard.cancelled():
            return guard.result()
        if self._closed is not None:
            return Closing(Ending.STOPPING, self._closed)
        if self.stop.is_set():
            return Closing(Ending.STOPPING, "stopping")
        return Closing(Ending.DROPPED, reader.result())

    async def _read(self, ws: ClientConnection) -> str:
        """Handle frames until the connection closes; why it closed."""
        handle = self._handle
        try:
            handle(await ws.recv(decode=False), time.time_ns() // 1_000_000)
            self._delivering()
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
        elif parsed.ts > recv_ts + MAX_AHEAD_MS:
            ahead = parsed.ts - recv_ts
            self._intake.reject(raw, f"trade time {ahead} ms ahead of this clock", self.symbol)
        else:
            self._intake.tick(parsed)

    async def _guard(self, url: str) -> Closing:
        """Watch one connection for a reason to end it: stop, silence, and the 24 h renewal."""
        loop = asyncio.get_running_loop()
        options = self.options
        opened = last_change = loop.time()
        opened_ms = now_ms()
        seen = self.frames
        interval = min(1.0, options.stale_timeout_s / 4)
        quiet_for = options.stale_timeout_s
        while True:
            if await self._sleep(interval):
                return Closing(Ending.STOPPING, "stopping")
            now = loop.time()
            if self.frames != seen:
                seen, last_change, quiet_for = self.frames, now, options.stale_timeout_s
            elif now - last_change >= quiet_for:
                closing = await self._silence(url, opened_ms, seen)
                if closing is not None:
                    return closing
                last_change = loop.time()
                quiet_for = min(quiet_for * 2, options.stale_timeout_s * QUIET_CHECKS_MAX)
            if now - opened >= options.max_age_s:
                successor = await self._renew()
                if successor is not None:
                    return Closing(
                        Ending.RENEWED, "renewed before Binance's 24 h cut-off", successor
                    )
                opened = now - options.max_age_s + options.stale_timeout_s

    async def _silence(self, url: str, opened_ms: int, seen: int) -> Closing | None:
        """The connection delivered nothing for a while: ask REST what it means. How to end
        the connection for it, or None to keep it."""
        silence = f"nothing received for {self.options.stale_timeout_s:g} s"
        if self._prober is None:
            return self._stale(url, silence)
        try:
            # Bounded: a REST pause (429, a 418 ban, the budget spent on back-fills) must not
            # keep a stuck connection open nor hold the 24 h renewal.
            newest = await asyncio.wait_for(
                self._prober.newest_trade(self.symbol, self._state.last_price),
                self.options.stale_timeout_s,
            )
        except (RestFailure, TimeoutError) as exc:
            said = str(exc) or "no answer in time"
            self._notices.event("stale", f"{url}: {silence}; REST: {said}", self.symbol)
            return self._stale(url, None)
        if self.frames != seen:
            return None
        judgement = judge(
            opened_ms=self._prober.exchange_ms(opened_ms),
            newest_id=None if newest is None else newest.id,
            newest_ms=None if newest is None else newest.time,
            last_id=self._state.last_id,
            route_delivered=self.route.delivered,
        )
        if newest is not None and judgement.missed_through is not None:
            self._intake.claim(self.symbol, judgement.missed_through, newest.time)
        if judgement.verdict is Verdict.QUIET:
            self.quiet_checks += 1
            log.debug("quiet, proven by REST", extra={"symbol": self.symbol})
            return None
        assert newest is not None
        traded = f"the exchange traded (id {newest.id} at {iso_ms(newest.time)})"
        if judgement.verdict is Verdict.STUCK:
            self._notices.event(
                "stale", f"{url}: {silence} while {traded}: reconnecting", self.symbol
            )
            return Closing(Ending.STUCK, f"stuck, {silence}")
        self._notices.event(
            "route_silent",
            f"{url}: {silence} while {traded} since the connection opened",
            self.symbol,
        )
        silent = self.route.label
        self.route.proven_silent()
        self._route_changed(f"{silent} is silent")
        return Closing(Ending.ROUTE_SILENT, f"route {silent} silent")

    def _stale(self, url: str, silence: str | None) -> Closing:
        """End a silent connection that REST could not judge (the old watchdog)."""
        if silence is not None:
            self._notices.event("stale", f"{url}: {silence}", self.symbol)
        return Closing(
            Ending.STALE, f"stale, nothing received for {self.options.stale_timeout_s:g} s"
        )

    def _delivering(self) -> None:
        if self.route.delivering():
            self._intake.route_delivering(self.symbol, self.route.label)
            self._notices.event(
                "delivering", f"{self.route.label} delivers {self.stream_name}", self.symbol
            )

    async def _renew(self) -> Successor | None:
        """Open a second connection and let it catch up with the first: the successor, or
        None when it could not. Trades both delivered are dropped by the sequence check of
        the switch."""
        url = self.url
        try:
            new = await open_connection(url, self.options)
        except CONNECT_ERRORS as exc:
            self._notices.event("connect_failed", f"renewal {url}: {_describe(exc)}", self.symbol)
            return None
        pending: list[tuple[bytes, int]] = []
        switched = False
        try:
            switched = await self._catch_up(new, pending)
        finally:
            if not switched:
                await new.close()
        return Successor(new, pending) if switched else None

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
                        first_id.append(parse_frame(raw, 0, self._symbols).trade_id)

        reader = asyncio.create_task(buffer())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.options.stale_timeout_s
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
            if parsed.trade_id <= last_id:
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
