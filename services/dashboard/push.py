"""Server-sent events: the page is told at once when its view's streams have new entries.

`GET /push?view=<the view store as JSON>` answers `text/event-stream`. Each event's data is the
newest id of each chart stream that moved (`{"a": "...", "stats": "..."}`); the page then asks
the chart callback for the step after its cursor, as a poll would. The points themselves travel
only through that callback, so the browser's cursor of stream ids stays the one source of what
the page holds: a dropped, repeated or late event can neither lose nor repeat a point. When the
channel cannot be opened or drops, the page polls every `DASH_UPDATE_MS` and says so; the
browser's EventSource reconnects by itself and the next step catches up from the cursor.

One blocking XREAD per open page, on a connection it keeps for its whole stream, at most
`DASH_PUSH_MAX_CLIENTS` at once (a page beyond it is refused with 503 and polls). Entries that
arrive within `COALESCE_MS` of each other (a pair's two bars and its statistics) are one event.

The view's bar in progress (`:forming`, every `DASH_FORMING_MS`) is the exception: provisional,
never part of the cursor, its newest entry goes in a `forming` event as it is, and the page draws
it at once, without a callback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from flask import Flask, Response, request
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.dashboard.data import stream_keys
from services.dashboard.selection import Selection
from shared.config import Settings
from shared.schemas import Forming, SchemaError

log = logging.getLogger(__name__)

BLOCK_MS = 5_000
"""How long one XREAD waits; a comment line is sent after an idle wait, so a page that went
away is noticed within this time and its connection freed."""
COALESCE_MS = 10
RETRY_MS = 1_000
"""What the page's EventSource waits before it reconnects."""
CHART_ROLES = ("a", "b", "stats", "alerts")
FORMING = "forming"
"""The role of the view's `:forming` stream: its newest entry goes to the page as it is."""


@dataclass(frozen=True)
class Subscription:
    """The streams one page watches, by role."""

    streams: dict[str, str]

    @classmethod
    def of_request(cls, view_json: str | None, default_window: int) -> Subscription:
        """The view's streams; ValueError says what is wrong with the request."""
        if not view_json:
            raise ValueError("the view parameter is missing")
        try:
            stored = orjson.loads(view_json)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the view parameter is not JSON: {exc}") from None
        try:
            view = Selection.from_store(stored)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a view: {exc}") from None
        if view.mode != "live":
            raise ValueError("only a live view has updates to push")
        keys = stream_keys(view.pair_view(), default_window)
        streams = {role: keys[role] for role in CHART_ROLES}
        streams[FORMING] = view.pair_view().forming_key(default_window)
        return cls(streams)


def moved(reply: Any, streams: dict[str, str]) -> dict[str, str]:
    """The newest id of each chart stream in an XREAD reply, by role."""
    role_of = {key: role for role, key in streams.items()}
    newest: dict[str, str] = {}
    for key, entries in reply or []:
        role = role_of[str(key)]
        if entries and role != FORMING:
            newest[role] = str(entries[-1][0])
    return newest


def newest_forming(reply: Any, streams: dict[str, str]) -> Forming | None:
    """The newest readable entry of the view's `:forming` stream in an XREAD reply."""
    for key, entries in reply or []:
        if str(key) != streams[FORMING]:
            continue
        for _, fields in reversed(entries):
            try:
                return Forming.from_fields(fields)
            except SchemaError:
                continue
    return None


def event(data: dict[str, str]) -> str:
    return f"data: {orjson.dumps(data).decode()}\n\n"


def forming_event(forming: Forming) -> str:
    """A `forming` event: the bar in progress, which the page draws without a callback."""
    return f"event: {FORMING}\ndata: {orjson.dumps(dataclasses.asdict(forming)).decode()}\n\n"


def events(client: redis.Redis, subscription: Subscription) -> Iterator[str]:
    """The event stream of one page, until it goes away or Redis fails."""
    after = tails(client, subscription)
    yield f"retry: {RETRY_MS}\n\n"
    yield event({})  # the page catches up at once after a reconnect
    while True:
        reply = client.xread(after, block=BLOCK_MS)  # type: ignore[arg-type]
        if not reply:
            yield ": idle\n\n"
            continue
        streams = subscription.streams
        newest = moved(reply, streams)
        forming = newest_forming(reply, streams)
        after = _after(after, reply)
        if newest:
            # Slept here, not blocked in Redis: a short BLOCK ends on Redis's 100 ms clock (hz 10).
            time.sleep(COALESCE_MS / 1000)
            more = client.xread(after)  # type: ignore[arg-type]
            newest.update(moved(more, streams))
            forming = newest_forming(more, streams) or forming
            after = _after(after, more)
        if forming is not None:
            yield forming_event(forming)
        if newest:
            yield event(newest)


def tails(client: redis.Redis, subscription: Subscription) -> dict[str, str]:
    """Each stream's newest id now (`0-0` when empty): reading after these ids, rather than
    after `$`, misses nothing that arrives between two reads."""
    pipe = client.pipeline(transaction=False)
    for key in subscription.streams.values():
        pipe.xrevrange(key, count=1)
    replies = pipe.execute()
    return {
        key: str(reply[0][0]) if reply else "0-0"
        for key, reply in zip(subscription.streams.values(), replies, strict=True)
    }


def _after(after: dict[str, str], reply: Any) -> dict[str, str]:
    out = dict(after)
    for key, entries in reply or []:
        if entries:
            out[str(key)] = str(entries[-1][0])
    return out


def push_client(settings: Settings) -> redis.Redis:
    """Blocking reads need a socket timeout longer than their block, and a connection each. No
    retries (redis-py retries a command 10 times by default): a cut connection ends the page's
    stream, and the page says so, polls, and reconnects from its cursor, rather than waiting
    silently through the retries."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=0.5,
        socket_timeout=BLOCK_MS / 1000 + 5,
        max_connections=settings.dash_push_max_clients + 1,
        retry=Retry(NoBackoff(), 0),
    )


@contextlib.contextmanager
def page_connection(client: redis.Redis) -> Iterator[redis.Redis]:
    """A client that keeps one connection of the push pool for the page's whole stream. A
    pooled client checks a connection out per command and silently reconnects one that was cut
    while it sat in the pool, so a cut between two reads went unnoticed; on a connection of its
    own, a cut always fails the next read and ends the stream."""
    connection = redis.Redis(connection_pool=client.connection_pool, single_connection_client=True)
    try:
        yield connection
    finally:
        connection.close()


def register_push(server: Flask, settings: Settings) -> None:
    client = push_client(settings)
    slots = threading.BoundedSemaphore(settings.dash_push_max_clients)

    @server.route("/push")
    def push() -> Response:
        try:
            subscription = Subscription.of_request(request.args.get("view"), settings.window)
        except ValueError as exc:
            return Response(f"{exc}\n", status=400, mimetype="text/plain")
        if not slots.acquire(blocking=False):
            limit = settings.dash_push_max_clients
            return Response(
                f"{limit} pages already receive pushed updates (DASH_PUSH_MAX_CLIENTS): "
                "this one polls\n",
                status=503,
                mimetype="text/plain",
            )

        def stream() -> Iterator[str]:
            try:
                with page_connection(client) as connection:
                    yield from events(connection, subscription)
            except redis.RedisError as exc:
                log.warning("push stream ended", extra={"error": str(exc)})

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        response = Response(stream(), mimetype="text/event-stream", headers=headers)
        response.call_on_close(slots.release)  # also when the stream never started
        return response
