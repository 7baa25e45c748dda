"""Publishing a service's health record to `health:<service>`, every heartbeat and once more
when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shared.health import Health
from shared.redis_io import UNAVAILABLE, Redis

log = logging.getLogger(__name__)


async def publish(redis: Redis, health: Health) -> bool:
    """Write the record; False (logged once per outage by the caller) when Redis is away."""
    try:
        await redis.hset(health.key, mapping=health.record())
        return True
    except UNAVAILABLE:
        return False


FINAL_PUBLISH_S = 0.5
"""The `stopped` record is given this long: a hanging Redis must not hold up the exit."""


async def heartbeat(redis: Redis, health: Health, interval_s: float, stop: asyncio.Event) -> None:
    """Publish `health` every `interval_s` until `stop`, then once more as `stopped` (given at
    most `FINAL_PUBLISH_S`).

    The runtime sets `stop` only when the service body has finished (its drain included), so the
    final record carries the final counters.
    """
    reachable = True
    while not stop.is_set():
        published = await publish(redis, health)
        if published != reachable:
            reachable = published
            log.warning("health record " + ("published again" if published else "not published"))
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            pass
    health.status = "stopped"
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(publish(redis, health), timeout=FINAL_PUBLISH_S)
