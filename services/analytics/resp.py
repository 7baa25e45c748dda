"""Redis protocol (RESP) encoding and raw round trips, for the worker's two hot paths.

redis-py packs every argument of every command in Python with type checks; for the tick reads
(one XREADGROUP of ~45 arguments, hundreds of times a second) and the per-bar output (hundreds
of commands of ~36 arguments) that is most of the worker's time. Here the commands are encoded
once (or straight from the records) and sent on a connection taken from the client's pool, so
authentication, TLS and database selection stay redis-py's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from shared.redis_io import Redis

Arg = bytes | str | int | float


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def arg(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def command(*args: Arg) -> bytes:
    """One command in the Redis protocol."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg(a)) for a in args)


async def round_trip(
    redis: Redis, payload: bytes, replies: int, on_error: Callable[[ResponseError], None]
) -> list[Any]:
    """Send pre-encoded commands at once and read their `replies`.

    A reply that is an error goes to `on_error` (the other commands went through); a connection
    failure drops the connection and raises.
    """
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    results: list[Any] = []
    try:
        await connection.send_packed_command(payload, check_health=False)
        for _ in range(replies):
            try:
                results.append(await connection.read_response())
            except ResponseError as exc:
                on_error(exc)
                results.append(exc)
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    return results
