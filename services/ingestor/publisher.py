"""Queue to `ticks:<SYMBOL>`: one Redis Function call per batch, retried until Redis takes it.

The call (`library.PUBLISH_TICKS`) appends the batch atomically and idempotently: a batch
retried after a lost reply, or a second ingestor feeding the same streams, adds nothing twice.
It also records the gaps the batch revealed in `gaps:<SYMBOL>`, so a gap is in Redis no later
than the tick after it; only then is it handed to the back-filler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from services.ingestor.binance import TickRow
from services.ingestor.gaps import Gap
from services.ingestor.intake import Intake
from services.ingestor.library import LIBRARY
from shared import keys
from shared.redis_io import ENCODING_ERRORS, UNAVAILABLE, Redis, RedisError

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


def publishing_client(url: str) -> Redis:
    """A client that fails fast: the publisher retries on its own terms, so redis-py must not
    spend seconds on hidden retries (a stop request could not be honoured meanwhile). One
    immediate retry replaces a pooled connection that a Redis restart has closed."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        encoding_errors=ENCODING_ERRORS,
        socket_connect_timeout=1.0,
        socket_timeout=10.0,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 1),
    )


def encode_batch(rows: Sequence[TickRow], index: Mapping[str, int]) -> bytes:
    """The rows argument of one call: `[[symbol index, ts, symbol, price, ...], ...]`."""
    return orjson.dumps(
        [
            [index[symbol], str(ts), symbol, price, size, str(trade_id), side, str(recv_ts)]
            for ts, symbol, price, size, trade_id, side, recv_ts in rows
        ]
    )


NO_GAPS = b"[]"


def encode_gaps(gaps: Sequence[Gap], index: Mapping[str, int]) -> bytes:
    """The gaps argument of one call: `[[symbol index, field, value], ...]`."""
    if not gaps:
        return NO_GAPS
    return orjson.dumps([[index[gap.symbol], gap.field, gap.value] for gap in gaps])


class Publisher:
    def __init__(
        self,
        redis: Redis,
        intake: Intake,
        symbols: Sequence[str],
        *,
        maxlen: int,
        batch: int,
        on_published: Callable[[Sequence[TickRow]], None] | None = None,
        on_gaps: Callable[[Sequence[Gap]], None] | None = None,
    ) -> None:
        self._redis = redis
        self._intake = intake
        self._queue = intake.queue
        self._notices = intake.notices
        self._symbols = tuple(symbols)
        self._streams = [keys.ticks(symbol) for symbol in self._symbols]
        self._keys = [*self._streams, *(keys.gaps(symbol) for symbol in self._symbols)]
        self._index = {symbol: i + 1 for i, symbol in enumerate(self._symbols)}
        self._maxlen = str(maxlen)
        self._batch = batch
        self._on_published = on_published
        self._on_gaps = on_gaps
        self.reachable = True
        self.batches = 0
        self._away_since = 0.0
        self._failure = ""

    @property
    def failure(self) -> str:
        """Why the last batch did not go out, while it has not (empty when publishing works)."""
        return "" if self.reachable else self._failure

    async def load(self) -> None:
        """Load (or replace) the function library; `UNAVAILABLE` errors propagate."""
        await self._redis.function_load(LIBRARY, replace=True)

    async def newest_trades(self) -> dict[str, tuple[int, int]]:
        """(trade id, trade time) of the newest tick on each symbol's stream (symbols with an
        empty stream left out); `UNAVAILABLE` errors propagate."""
        found: dict[str, tuple[int, int]] = {}
        for symbol, stream in zip(self._symbols, self._streams, strict=True):
            newest = await self._redis.xrevrange(stream, count=1)
            fields = newest[0][1] if newest else None
            if fields:
                with contextlib.suppress(KeyError, ValueError):
                    found[symbol] = (int(fields["trade_id"]), int(fields["ts"]))
        return found

    async def run(self) -> None:
        """Publish batches (and the gaps opened so far) until the queue is closed and empty."""
        queue = self._queue
        while True:
            rows = await queue.take(self._batch)
            gaps = self._intake.take_opened()
            if not rows and not gaps:
                if queue.finished:
                    return
                continue
            await self.publish(rows, gaps)
            queue.done()
            self._intake.check_overflow_over()

    async def publish(self, rows: Sequence[TickRow], gaps: Sequence[Gap] = ()) -> None:
        """Publish one batch and record its gaps, retrying (with capped backoff) until Redis
        has taken them; then hand the gaps to the back-filler."""
        payload = encode_batch(rows, self._index)
        gap_payload = encode_gaps(gaps, self._index)
        delay = RETRY_FIRST_S
        while True:
            try:
                counts = await self._redis.fcall(
                    keys.PUBLISH_TICKS, len(self._keys), *self._keys, self._maxlen, payload,
                    gap_payload,
                )  # fmt: skip
            except ResponseError as exc:
                if "function not found" in str(exc).lower():
                    await self._try_load()
                    continue
                self._failed(f"redis rejected the batch: {exc}")
            except UNAVAILABLE as exc:
                self._failed(f"redis away: {exc}")
            else:
                self._account(counts)
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        if self._on_published is not None:
            self._on_published(rows)
        if gaps and self._on_gaps is not None:
            self._on_gaps(gaps)

    async def _try_load(self) -> None:
        try:
            await self.load()
            log.info("publish function loaded", extra={"library": keys.INGEST_LIBRARY})
        except UNAVAILABLE as exc:
            self._failed(f"redis away: {exc}")
            await asyncio.sleep(RETRY_FIRST_S)
        except RedisError as exc:
            self._failed(f"could not load the publish function: {exc}")
            await asyncio.sleep(RETRY_MAX_S)

    def _failed(self, reason: str) -> None:
        if self.reachable or reason != self._failure:
            log.warning("ticks wait in the queue", extra={"reason": reason})
        if self.reachable:
            self._away_since = time.monotonic()
        self.reachable = False
        self._failure = reason

    def _account(self, counts: Sequence[int]) -> None:
        self.batches += 1
        for i, symbol in enumerate(self._symbols):
            self._intake.published(symbol, int(counts[2 * i]), int(counts[2 * i + 1]))
        if not self.reachable:
            self.reachable = True
            outage = time.monotonic() - self._away_since
            self._notices.event(
                "redis_back",
                f"publishing again after {outage:.1f} s ({self._failure}); "
                f"{len(self._queue)} ticks were waiting",
            )
