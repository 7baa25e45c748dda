"""Queue to `ticks:<SYMBOL>`: one Redis Function call per batch, retried until Redis takes it.

Why a function: redis-py spends about 40 µs of Python per command here, so a pipeline of
XADDs tops out near 25,000 entries/s, while Redis itself appends about 200,000/s. One `FCALL`
carries a whole batch as a single JSON argument, and the function does the `XADD MAXLEN ~`s
inside Redis: one command and one round trip per batch, whatever its size.

The function also makes publishing idempotent and each batch atomic. Per stream it skips any
tick whose `trade_id` is not above the newest one already there, so a batch retried after a
lost reply (the connection dropped after Redis ran it) is never added twice, and a second
ingestor feeding the same streams adds nothing twice either.
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
from services.ingestor.intake import Intake
from shared import keys
from shared.redis_io import ENCODING_ERRORS, UNAVAILABLE, Redis, RedisError
from shared.schemas import TICK_FIELDS

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


def _library() -> str:
    # Row layout: [stream index, then the tick's fields in TICK_FIELDS order, as strings].
    xadd_fields = ", ".join(f"'{name}', row[{i + 2}]" for i, name in enumerate(TICK_FIELDS))
    id_column = TICK_FIELDS.index("trade_id") + 2
    return f"""#!lua name={keys.INGEST_LIBRARY}
-- Trade ids are compared as decimal text without leading zeros, as the ingestor writes them:
-- Lua numbers are doubles, which cannot tell apart ids above 2^53 that differ by one.
local function canonical(id)
  if type(id) ~= 'string' or not string.match(id, '^[0-9]+$') then return nil end
  return (string.gsub(id, '^0+(%d)', '%1'))
end

local function above(id, newest)
  if newest == nil then return true end
  if #id ~= #newest then return #id > #newest end
  return id > newest
end

local function newest_trade_id(stream)
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #newest == 0 then return nil end
  local fields = newest[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'trade_id' then return canonical(fields[i + 1]) end
  end
  return nil
end

local function publish_ticks(keys, args)
  local maxlen = args[1]
  local rows = cjson.decode(args[2])
  local newest, known, counts = {{}}, {{}}, {{}}
  for k = 1, #keys do counts[2 * k - 1] = 0; counts[2 * k] = 0 end
  for i = 1, #rows do
    local row = rows[i]
    local k = row[1]
    local stream = keys[k]
    if not known[k] then newest[k] = newest_trade_id(stream); known[k] = true end
    local id = row[{id_column}]
    if above(id, newest[k]) then
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', {xadd_fields})
      newest[k] = id
      counts[2 * k - 1] = counts[2 * k - 1] + 1
    else
      counts[2 * k] = counts[2 * k] + 1
    end
  end
  return counts
end

redis.register_function('{keys.PUBLISH_TICKS}', publish_ticks)
"""


LIBRARY = _library()
"""The Lua source loaded with `FUNCTION LOAD REPLACE`. The call replies, per stream in KEYS
order, the number of ticks added and the number skipped as already there."""


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
    """The JSON argument of one call: `[[stream index, ts, symbol, price, ...], ...]`."""
    return orjson.dumps(
        [
            [index[symbol], str(ts), symbol, price, size, str(trade_id), side, str(recv_ts)]
            for ts, symbol, price, size, trade_id, side, recv_ts in rows
        ]
    )


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
    ) -> None:
        self._redis = redis
        self._intake = intake
        self._queue = intake.queue
        self._notices = intake.notices
        self._symbols = tuple(symbols)
        self._streams = [keys.ticks(symbol) for symbol in self._symbols]
        self._index = {symbol: i + 1 for i, symbol in enumerate(self._symbols)}
        self._maxlen = str(maxlen)
        self._batch = batch
        self._on_published = on_published
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
        """Publish batches until the queue is closed and empty."""
        while True:
            rows = await self._queue.take(self._batch)
            if not rows:
                return
            await self.publish(rows)
            self._queue.done()
            self._intake.check_overflow_over()

    async def publish(self, rows: Sequence[TickRow]) -> None:
        """Publish one batch, retrying (with capped backoff) until Redis has taken it."""
        payload = encode_batch(rows, self._index)
        delay = RETRY_FIRST_S
        while True:
            try:
                counts = await self._redis.fcall(
                    keys.PUBLISH_TICKS, len(self._streams), *self._streams, self._maxlen, payload
                )
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
            state = self._intake.states[symbol]
            state.published += int(counts[2 * i])
            state.duplicates += int(counts[2 * i + 1])
        if not self.reachable:
            self.reachable = True
            outage = time.monotonic() - self._away_since
            self._notices.event(
                "redis_back",
                f"publishing again after {outage:.1f} s ({self._failure}); "
                f"{len(self._queue)} ticks were waiting",
            )
