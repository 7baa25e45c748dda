"""A live connection's terms: the connection policy from settings, the back-off between
attempts, opening the socket, and how a connection ends."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from services.ingestor.routes import Endpoint, StreamKind
from shared.config import Settings, section

MAX_MESSAGE_BYTES = 1024 * 1024
"""The websockets library closes a connection that sends a bigger message (code 1009).
Frames between 64 KiB and this size are dead-lettered and the connection carries on."""
CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException)


@dataclass(frozen=True)
class FeedOptions:
    """The connection policy: each field but the last three is the setting `binance_<field>`."""

    stream: StreamKind
    stale_timeout_s: float
    fallback_after: int
    reconnect_base_s: float
    reconnect_max_s: float
    max_age_s: float
    endpoint: Endpoint
    """The host and pinned path of `binance_ws_url`."""
    open_timeout_s: float = 10.0
    ping_interval_s: float = 20.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedOptions:
        return section(
            settings,
            "binance_",
            cls,
            endpoint=Endpoint.from_url(settings.binance_ws_url),
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


async def open_connection(url: str, options: FeedOptions) -> ClientConnection:
    return await connect(
        url,
        open_timeout=options.open_timeout_s,
        ping_interval=options.ping_interval_s,
        ping_timeout=options.ping_interval_s,
        close_timeout=1.0,
        compression=None,
        max_size=MAX_MESSAGE_BYTES,
        max_queue=256,
    )


class Ending(Enum):
    """Why a connection ended: the edges out of the open state."""

    DROPPED = "dropped"
    """The server or the network closed it."""
    STOPPING = "stopping"
    STALE = "stale"
    """Silent, and REST could not say whether the exchange traded: reconnected blindly."""
    STUCK = "stuck"
    """Silent while the exchange traded, on a route that has delivered: reconnected."""
    ROUTE_SILENT = "route silent"
    """Silent while the exchange traded, on a route that never delivered: the next route."""
    RENEWED = "renewed"
    """Replaced by a successor that has caught up, before Binance's 24 h cut-off."""


@dataclass(frozen=True)
class Successor:
    """The renewal's new connection and the frames it delivered while catching up."""

    connection: ClientConnection
    pending: list[tuple[bytes, int]]


@dataclass(frozen=True)
class Closing:
    """The decision to end a connection (or the news that it ended), with the words for the
    `disconnected` event."""

    ending: Ending
    detail: str
    successor: Successor | None = None
