"""Events and dead letters, sent to Redis by a task of their own so no feed ever waits on them.

`shared.events` writes a record at once; here records are logged at once and queued, and a
sender task writes them in pipelined batches. While Redis is away they wait (up to a bound of
records and bytes, beyond which the oldest are dropped and counted) and go out when it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from shared import keys
from shared.events import deadletter_fields
from shared.health import now_ms
from shared.redis_io import UNAVAILABLE, Redis, RedisError
from shared.schemas import Event, StreamFields

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
MAX_PENDING_BYTES = 16 * 1024 * 1024
SEND_BATCH = 500
RETRY_S = 0.5


class Notices:
    def __init__(
        self, redis: Redis, service: str, *, maxlen_events: int, maxlen_deadletter: int
    ) -> None:
        self._redis = redis
        self._service = service
        self._maxlen = {keys.EVENTS: maxlen_events, keys.deadletter(service): maxlen_deadletter}
        self._pending: deque[tuple[str, StreamFields, int]] = deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self.lost = 0
        self.sent = 0
        self._bound_drops = 0

    def event(self, kind: str, detail: str, symbol: str = "") -> None:
        """Log an event now and queue it for the `events` stream."""
        log.info("event", extra={"kind": kind, "symbol": symbol, "detail": detail})
        record = Event(service=self._service, kind=kind, detail=detail, ts=now_ms(), symbol=symbol)
        self._queue(keys.EVENTS, record.to_fields())

    def dead_letter(self, raw: str | bytes, reason: str) -> None:
        """Queue an input that could not be processed for `deadletter:<service>`."""
        log.debug("dead letter", extra={"reason": reason})
        self._queue(keys.deadletter(self._service), deadletter_fields(raw, reason))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _queue(self, stream: str, fields: StreamFields) -> None:
        size = sum(len(str(value)) for value in fields.values())
        self._pending.append((stream, fields, size))
        self._pending_bytes += size
        while len(self._pending) > MAX_PENDING or self._pending_bytes > MAX_PENDING_BYTES:
            _, _, dropped = self._pending.popleft()
            self._pending_bytes -= dropped
            self._bound_drops += 1
            self.lost += 1
        self._wake.set()

    async def run(self) -> None:
        """Send queued records until cancelled."""
        reachable = True
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            sent = await self._send_some()
            if sent != reachable:
                reachable = sent
                if not sent:
                    log.warning("events and dead letters wait: redis away")
            if not sent:
                await asyncio.sleep(RETRY_S)

    async def flush(self) -> bool:
        """Send everything queued now; False when Redis did not take it all."""
        while self._pending:
            if not await self._send_some():
                return False
        return True

    async def _send_some(self) -> bool:
        async with self._sending:
            return await self._send_batch()

    async def _send_batch(self) -> bool:
        if not self._pending:
            return True
        batch = [self._pending[i] for i in range(min(SEND_BATCH, len(self._pending)))]
        drops_before = self._bound_drops
        pipe = self._redis.pipeline(transaction=False)
        for stream, fields, _ in batch:
            pipe.xadd(stream, fields, maxlen=self._maxlen[stream], approximate=True)
        try:
            await pipe.execute()
        except UNAVAILABLE:
            return False
        except RedisError as exc:
            log.error("events and dead letters rejected by redis, dropped: %s", exc)
            self.lost += len(batch)
        else:
            self.sent += len(batch)
        # The bound may have dropped some of the batch from the front meanwhile.
        for _ in range(max(0, len(batch) - (self._bound_drops - drops_before))):
            _, _, size = self._pending.popleft()
            self._pending_bytes -= size
        return True
