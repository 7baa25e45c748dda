"""Redis connections (redis.asyncio with the hiredis parser) and consumer-group helpers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import cast

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import KeyT, StreamIdT

log = logging.getLogger(__name__)

Redis = aioredis.Redis
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors that mean "Redis is not reachable right now", as opposed to a bad command."""
SOCKET_TIMEOUT_S = 5.0
"""Longest wait for any reply on a `client()` connection; then the call fails with a timeout (one
of `UNAVAILABLE`), so a Redis that hangs cannot hold a service past its shutdown grace. Above the
longest XREADGROUP BLOCK any service uses (the writer's, 1 s)."""
ENCODING_ERRORS = "replace"
"""How every client decodes replies: bytes that are not UTF-8 (any program can write them into a
stream or a hash) become U+FFFD instead of failing the whole reply with `UnicodeDecodeError`, which
would stop a service on one bad entry. The checks of each record then refuse such a value, naming
its field."""


RAW_REPLY = {NEVER_DECODE: True}
"""Options for `execute_command` that return a reply as bytes. For HGETALL of a hash whose fields
may not be UTF-8: decoding in the client (redis-py 8 with hiredis) misreads such a hash once two
field names decode alike, pairing later fields with the wrong values. Read it raw, then
`text_hash`."""


def text_hash(reply: Mapping[bytes, bytes]) -> dict[str, str]:
    """A hash read with `RAW_REPLY`, as text (bytes that are not UTF-8 replaced with U+FFFD)."""
    return {
        field.decode(errors=ENCODING_ERRORS): value.decode(errors=ENCODING_ERRORS)
        for field, value in reply.items()
    }


def decoded(reply: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """Type a hash or stream-entry reply as text: `client()` connections decode every reply."""
    return cast(dict[str, str], reply)


StreamEntry = tuple[str, dict[str, str]]
"""(entry id, fields) as read back from a stream."""


async def read_group(
    redis: Redis,
    group: str,
    consumer: str,
    streams: Mapping[str, str],
    *,
    count: int,
    block_ms: int | None = None,
) -> list[tuple[str, list[StreamEntry]]]:
    """XREADGROUP, typed: `[(stream, [(id, fields), ...]), ...]`, empty when nothing came.

    `streams` maps each stream to the id to read after (`>` for new entries, `0` for this
    consumer's own pending ones). Keep `block_ms` finite so a stop request is noticed.
    """
    ids: dict[KeyT, StreamIdT] = {stream: after for stream, after in streams.items()}
    reply = await redis.xreadgroup(group, consumer, ids, count=count, block=block_ms)
    return cast(list[tuple[str, list[StreamEntry]]], reply or [])


class RedisUnavailable(RuntimeError):
    """Redis did not answer within the connection attempts allowed at start."""


def client(url: str) -> Redis:
    """A client with string replies; connects lazily. hiredis parses replies when installed."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        encoding_errors=ENCODING_ERRORS,
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=10,
        socket_timeout=SOCKET_TIMEOUT_S,
    )


async def connect(url: str, *, attempts: int = 30, delay_s: float = 0.2) -> Redis:
    """Connect and PING, retrying with capped backoff; `RedisUnavailable` when out of tries."""
    redis = client(url)
    for attempt in range(1, attempts + 1):
        try:
            await redis.ping()
            return redis
        except UNAVAILABLE as exc:
            if attempt == attempts:
                await redis.aclose()
                raise RedisUnavailable(f"Redis at {url} did not answer: {exc}") from exc
            log.warning(
                "redis not reachable, retrying",
                extra={"url": url, "retries_left": attempts - attempt, "error": str(exc)},
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)
    raise AssertionError("unreachable")


async def ensure_group(redis: Redis, stream: str, group: str, start_id: str = "0") -> bool:
    """Create `group` on `stream` (and the stream) unless it exists; True when created.

    The default start id `0` makes a new group read the stream from its first entry, so entries
    published before the consumer first started are not skipped.
    """
    try:
        await redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        return True
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


__all__ = [
    "ENCODING_ERRORS",
    "UNAVAILABLE",
    "Redis",
    "RedisError",
    "RedisUnavailable",
    "client",
    "connect",
    "decoded",
    "ensure_group",
    "read_group",
]
