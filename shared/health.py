"""The health record each service keeps in `health:<service>`: status, heartbeat time, counters.

The record has no TTL: a service that died keeps its last `updated`, so the dashboard can say how
long it has been silent. A service that stops cleanly writes `status=stopped`.

Pure: the record and the staleness rule. `shared.heartbeat` writes it to Redis.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

from shared import keys
from shared.schemas import StreamFields

Status = Literal["starting", "ok", "degraded", "stopping", "stopped"]
Counter = int | float | str

# Fields of the health records that the dashboard reads, spelled once for writers and reader.
TICKS = "ticks"
"""ingestor: trades received, all symbols."""
PROBLEM = "problem"
"""ingestor: why it is degraded ("" when it is not)."""
BACKFILL_WAITING = "backfill_waiting:"
"""ingestor: `backfill_waiting:<SYMBOL>`, trade ids of gaps not yet back-filled."""
LAG_ENTRIES = "lag_entries"
"""writer: stream entries not yet committed to SQLite."""
LAST_ERROR = "last_error"
"""writer: the error that made it degraded ("" once it is ok again)."""
ALERTS_FIRED = "alerts_fired"
"""analytics: alerts fired since it started (absent until the first)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Health:
    """A service's status and counters, held in memory and published by
    `shared.heartbeat.heartbeat`."""

    def __init__(self, service: str) -> None:
        self.key = keys.health(service)
        self.service = service
        self.status: Status = "starting"
        self.counters: dict[str, Counter] = {}
        self.started = now_ms()

    def incr(self, name: str, amount: int = 1) -> None:
        self.counters[name] = int(self.counters.get(name, 0)) + amount

    def set(self, name: str, value: Counter) -> None:
        self.counters[name] = value

    def record(self) -> StreamFields:
        fields: StreamFields = {name: str(value) for name, value in self.counters.items()}
        fields.update(status=self.status, updated=str(now_ms()), started=str(self.started))
        return fields


STALE_HEARTBEATS = 5
STALE_AFTER_MIN_S = 5.0


def stale_after_ms(health_interval_s: float) -> int:
    """A health record older than this is a silent service: 5 heartbeats, at least 5 s."""
    return int(max(STALE_AFTER_MIN_S, STALE_HEARTBEATS * health_interval_s) * 1000)


def is_fresh(record: Mapping[str, str], max_age_ms: int, at_ms: int | None = None) -> bool:
    """True when a health record is `ok` or `degraded` and was updated within `max_age_ms`."""
    try:
        updated = int(record.get("updated", "0"))
    except ValueError:
        return False
    age = (now_ms() if at_ms is None else at_ms) - updated
    return record.get("status") in ("ok", "degraded") and age <= max_age_ms
