"""Where each Binance stream kind lives, and which route to try when one is proven silent.

Since 2026-04-23 Binance USD-M Futures routes market streams by path on one host:
`/public` carries high-frequency data, `/market` regular market data, `/private` user data. A
connection with no routed path (`/ws/...`) is treated as `/public`. A stream on the wrong path
connects, acks and then sends nothing, with no error. Binance documents only `@aggTrade` as a
USD-M trade stream; reports from April 2026 found `@trade` silent on `/market` and delivering on
the unrouted path. Hence one table, and an order of candidates: the routed path, then the
unrouted one, then the other routed path.

A route is left only when REST proves it silent (`silence.py`): the exchange traded since the
connection opened and the socket gave nothing. A route that has delivered in this run is kept.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

StreamKind = Literal["trade", "aggTrade"]

ROUTES: Mapping[StreamKind, str] = {"trade": "/public", "aggTrade": "/market"}
"""Stream kind -> the routed path that carries it."""
ROUTED_PATHS = ("/public", "/market")
UNROUTED = ""
"""No routed path: `<host>/ws/<stream>`, which Binance treats as `/public`."""


def route_label(path: str) -> str:
    """How a route is shown in health and events: `/public`, `/market`, `unrouted`."""
    return path or "unrouted"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """`BINANCE_WS_URL` read as a host, plus the path an old-style value ended in."""

    host: str
    """`wss://fstream.binance.com` (scheme, host and port; no path)."""
    pinned: str | None = None
    """A path the configured URL ended in (`/market`): tried first, and reported once."""

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parsed = urlparse(url.strip())
        host = f"{parsed.scheme}://{parsed.netloc}"
        path = parsed.path.rstrip("/")
        return cls(host, path or None)

    def candidates(self, stream: StreamKind) -> tuple[str, ...]:
        """The routes to try for `stream`, in order (the pinned path first, when there is one)."""
        routed = ROUTES[stream]
        order = [routed, UNROUTED, *(path for path in ROUTED_PATHS if path != routed)]
        if self.pinned is not None:
            order = [self.pinned, *(path for path in order if path != self.pinned)]
        return tuple(order)

    def note(self, stream: StreamKind) -> str | None:
        """The one-time report for an old-style URL, None for a plain host."""
        if self.pinned is None:
            return None
        return (
            f"BINANCE_WS_URL ends in a path ({self.pinned}): it is tried first for @{stream}, "
            f"then {', '.join(route_label(p) for p in self.candidates(stream)[1:])}. "
            f"BINANCE_WS_URL is the host now: set it to {self.host} to follow the routing table"
        )

    def url(self, path: str, symbol: str, stream: StreamKind) -> str:
        """One raw stream: `<host><path>/ws/btcusdt@trade` (Binance wants the symbol lower)."""
        return f"{self.host}{path}/ws/{symbol.lower()}@{stream}"


@dataclass(slots=True)
class RouteChoice:
    """One symbol's route: the candidate in use, whether it has delivered in this run, and how
    many routes were proven silent since something last delivered."""

    candidates: tuple[str, ...]
    index: int = 0
    delivered: bool = False
    """The current route has delivered in this run: it is kept, whatever happens next."""
    silent: int = 0
    """Routes proven silent in a row; all of them means the stream is silent everywhere."""
    unproven: int = 0
    """Silent connections in a row on this route that REST could not judge."""

    @property
    def path(self) -> str:
        return self.candidates[self.index]

    @property
    def label(self) -> str:
        return route_label(self.path)

    @property
    def everywhere_silent(self) -> bool:
        return self.silent >= len(self.candidates)

    def delivering(self) -> bool:
        """The current route delivered a frame; True the first time (to report it)."""
        self.unproven = 0
        self.silent = 0
        if self.delivered:
            return False
        self.delivered = True
        return True

    def proven_silent(self) -> None:
        """REST proved the current route silent: move to the next candidate."""
        self.silent += 1
        self.unproven = 0
        self.index = (self.index + 1) % len(self.candidates)

    def unproven_silence(self, limit: int) -> bool:
        """A silent connection REST could not judge (it did not answer); after `limit` of them
        in a row the next route is tried as if proven silent. True when it moved."""
        if self.delivered:
            return False
        self.unproven += 1
        if self.unproven < limit:
            return False
        self.proven_silent()
        return True
