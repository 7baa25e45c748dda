"""The bounded in-memory queue between the sources and the publisher.

Live feeds never wait (Binance drops a client that reads slowly): when the queue is full the
oldest waiting tick is dropped and handed to `on_overflow`, which counts and reports it.
Replay and synthetic sources wait for room instead, so they lose nothing. The publisher takes
a batch, publishes it, then calls `done()`; a batch in flight still counts against the bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from services.ingestor.binance import TickRow


class TickQueue:
    def __init__(self, capacity: int, on_overflow: Callable[[TickRow], None]) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self._items: deque[TickRow] = deque()
        self._on_overflow = on_overflow
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._nudged = False

    def __len__(self) -> int:
        return len(self._items) + self.in_flight

    def put_nowait(self, row: TickRow) -> None:
        """Queue `row`; when full, drop the oldest waiting tick (or `row` if all are in flight)."""
        items = self._items
        if len(items) + self.in_flight >= self.capacity:
            if not items:
                self._on_overflow(row)
                return
            self._on_overflow(items.popleft())
        items.append(row)
        self._ready.set()

    async def put(self, row: TickRow) -> None:
        """Queue `row`, waiting while the queue is full."""
        while len(self._items) + self.in_flight >= self.capacity:
            self._room.clear()
            await self._room.wait()
        self._items.append(row)
        self._ready.set()

    async def take(self, limit: int) -> list[TickRow]:
        """The oldest `limit` ticks at most, waiting for one; empty once closed and drained, or
        when `nudge()` wakes the taker for something other than ticks."""
        while not self._items:
            if self._closed or self._nudged:
                self._nudged = False
                return []
            self._ready.clear()
            await self._ready.wait()
        self._nudged = False
        return self.take_nowait(limit)

    def nudge(self) -> None:
        """Wake the taker even with no tick waiting (a gap found without a tick to carry it)."""
        self._nudged = True
        self._ready.set()

    @property
    def finished(self) -> bool:
        """Closed, and every tick taken."""
        return self._closed and not self._items

    def take_nowait(self, limit: int) -> list[TickRow]:
        items = self._items
        batch = [items.popleft() for _ in range(min(limit, len(items)))]
        self.in_flight = len(batch)
        return batch

    def done(self) -> None:
        """The batch in flight is published."""
        self.in_flight = 0
        self._room.set()

    def close(self) -> None:
        """No more ticks will come: `take` returns what is left, then an empty batch."""
        self._closed = True
        self._ready.set()
