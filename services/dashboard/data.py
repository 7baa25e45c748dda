"""What the dashboard reads from Redis, as plain records (no Dash here)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared import keys
from shared.health import now_ms
from shared.redis_io import decoded

STALE_AFTER_MS = 5_000


@dataclass(frozen=True)
class ServiceHealth:
    """One service's health record as the dashboard shows it."""

    service: str
    status: str
    age_ms: int | None
    counters: dict[str, str]

    @property
    def stale(self) -> bool:
        return self.age_ms is None or self.age_ms > STALE_AFTER_MS


@dataclass(frozen=True)
class PipelineHealth:
    redis_ok: bool
    redis_error: str
    services: tuple[ServiceHealth, ...]


def read_health(client: redis.Redis) -> PipelineHealth:
    """Every service's record, in pipeline order; `redis_ok=False` when Redis does not answer."""
    try:
        pipe = client.pipeline(transaction=False)
        for service in keys.SERVICES:
            pipe.hgetall(keys.health(service))
        records = [decoded(record) for record in pipe.execute()]
    except redis.RedisError as exc:
        return PipelineHealth(redis_ok=False, redis_error=str(exc), services=())
    at = now_ms()
    services = []
    for service, record in zip(keys.SERVICES, records, strict=True):
        updated = record.pop("updated", None)
        status = record.pop("status", "missing")
        age = at - int(updated) if updated and updated.isdigit() else None
        services.append(ServiceHealth(service, status, age, record))
    return PipelineHealth(redis_ok=True, redis_error="", services=tuple(services))
