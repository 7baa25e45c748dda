"""Operational records beside the data: the `events` stream and the dead-letter streams.

Both are best effort: when Redis is away the record is logged instead and the caller goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shared import keys
from shared.health import now_ms
from shared.redis_io import UNAVAILABLE, Redis
from shared.schemas import DEADLETTER_FIELDS, Event, StreamFields

log = logging.getLogger(__name__)

MAX_RAW_BYTES = 65_536
"""A dead-lettered input is kept up to this size; the rest is cut and the cut is said."""


async def emit_event(
    redis: Redis, service: str, kind: str, detail: str, *, symbol: str = "", maxlen: int
) -> bool:
    """Append an event to `events`; True when it reached Redis."""
    event = Event(service=service, kind=kind, symbol=symbol, detail=detail, ts=now_ms())
    log.info("event", extra={"kind": kind, "symbol": symbol, "detail": detail})
    try:
        await redis.xadd(keys.EVENTS, event.to_fields(), maxlen=maxlen, approximate=True)
        return True
    except UNAVAILABLE:
        return False


def deadletter_fields(raw: str | bytes, reason: str) -> StreamFields:
    """The entry kept for an input that could not be processed: why, the raw input, and when."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(text) > MAX_RAW_BYTES:
        text = text[:MAX_RAW_BYTES] + f"...[cut, {len(text)} chars in all]"
    return dict(zip(DEADLETTER_FIELDS, (reason, text, str(now_ms())), strict=True))


async def store_dead_letters(
    redis: Redis, service: str, letters: Iterable[tuple[str | bytes, str]], *, maxlen: int
) -> None:
    """Append each (raw input, reason) to `deadletter:<service>` in one round trip, trimmed
    like every stream (`MAXLEN ~`). Raises when Redis is away: a caller that acknowledges the
    inputs afterwards must not do so for letters that were not kept."""
    stream = keys.deadletter(service)
    pipe = redis.pipeline(transaction=False)
    for raw, reason in letters:
        pipe.xadd(stream, deadletter_fields(raw, reason), maxlen=maxlen, approximate=True)
    await pipe.execute()


async def dead_letter(
    redis: Redis, service: str, raw: str | bytes, reason: str, *, maxlen: int
) -> bool:
    """Append an unprocessable input to `deadletter:<service>`; True when it reached Redis."""
    try:
        await store_dead_letters(redis, service, [(raw, reason)], maxlen=maxlen)
        return True
    except UNAVAILABLE:
        log.warning("dead letter not stored, redis away", extra={"reason": reason})
        return False
