"""What the back-filler reads from Redis: the ticks a gap's ids already have, in the live stream
and in the back-fill stream, and the newest price."""

from __future__ import annotations

from typing import cast

from services.ingestor.backfill import Known
from shared import keys
from shared.redis_io import Redis, StreamEntry
from shared.schemas import SchemaError, check_tick, range_entry

SCAN = 1_000
"""Entries read per call."""
NEAR_MS = 2_000
"""How far before a gap's time the search of `ticks:<symbol>` starts."""


class StoredTicks:
    """Reads of `ticks:<symbol>` and `backfill:<symbol>`; no state of its own."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def known(self, symbol: str, first: int, last: int, near_ms: int) -> Known:
        """The ticks of trade ids `first..last` already in `ticks:<symbol>` (sizes) and in
        `backfill:<symbol>` (ranges)."""
        sizes = {
            trade_id: size
            for trade_id, size in await self.ticks_between(symbol, first, last, near_ms)
        }
        ranges = []
        upper = "+"
        while True:
            entries = cast(
                list[StreamEntry],
                await self.redis.xrevrange(keys.backfill(symbol), max=upper, min="-", count=SCAN),
            )
            for _, fields in entries:
                try:
                    tick, covers_through, _ = range_entry(
                        [text for pair in fields.items() for text in pair], symbol
                    )
                except SchemaError:
                    continue
                if tick[3] <= last and covers_through >= first:
                    ranges.append((tick[3], covers_through, tick[2]))
            if len(entries) < SCAN or not entries:
                break
            oldest = entries[-1][1]
            if int(oldest.get("last_trade_id", "0") or 0) < first:
                break
            upper = f"({entries[-1][0]}"
        return Known(sizes, ranges)

    async def ticks_between(
        self, symbol: str, first: int, last: int, near_ms: int
    ) -> list[tuple[int, str]]:
        """(trade id, size) of the ticks of `ticks:<symbol>` with ids `first..last`. The
        search starts near `near_ms` (entry ids are the times Redis added the ticks) and steps
        back when it started too late."""
        stream = keys.ticks(symbol)
        start = str(max(0, near_ms - NEAR_MS))
        entries = cast(list[StreamEntry], await self.redis.xrange(stream, min=start, count=SCAN))
        if not entries:
            tail = await self.redis.xrevrange(stream, count=SCAN)
            entries = list(reversed(cast(list[StreamEntry], tail)))
        while entries and _trade_id(entries[0], symbol) > first:
            before = cast(
                list[StreamEntry],
                await self.redis.xrevrange(stream, max=f"({entries[0][0]}", min="-", count=SCAN),
            )
            if not before:
                break
            entries = [*reversed(before), *entries]
        found: list[tuple[int, str]] = []
        while entries:
            for entry in entries:
                try:
                    _, _, size, trade_id, _, _, _, _ = check_tick(entry[1], symbol)
                except SchemaError:
                    continue
                if trade_id > last:
                    return found
                if trade_id >= first:
                    found.append((trade_id, size))
            if len(entries) < SCAN:
                break
            entries = cast(
                list[StreamEntry],
                await self.redis.xrange(stream, min=f"({entries[-1][0]}", count=SCAN),
            )
        return found

    async def reference_price(self, symbol: str) -> float | None:
        """The price of the newest tick in `ticks:<symbol>`, to check REST's prices against."""
        newest = cast(list[StreamEntry], await self.redis.xrevrange(keys.ticks(symbol), count=1))
        if not newest:
            return None
        try:
            return check_tick(newest[0][1], symbol)[6]
        except SchemaError:
            return None


def _trade_id(entry: StreamEntry, symbol: str) -> int:
    try:
        return check_tick(entry[1], symbol)[3]
    except SchemaError:
        return -1
