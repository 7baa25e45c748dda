"""Ticks into Redis as the ingestor adds them, for tests and benchmarks that skip the ingestor."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from shared import keys
from shared.schemas import Tick

CHUNK = 2_000


def publish(client: redis.Redis, ticks: Sequence[Tick], *, chunk: int = CHUNK) -> None:
    """XADD each tick to `ticks:<SYMBOL>`, pipelined, in order."""
    for start in range(0, len(ticks), chunk):
        pipe = client.pipeline(transaction=False)
        for tick in ticks[start : start + chunk]:
            pipe.xadd(keys.ticks(tick.symbol), tick.to_fields())
        pipe.execute()
