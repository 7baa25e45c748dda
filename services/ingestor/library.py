"""The Redis Function library the ingestor publishes through (`FUNCTION LOAD REPLACE`).

Why functions: redis-py spends about 40 µs of Python per command here, so a pipeline of XADDs
tops out near 25,000 entries/s, while Redis itself appends about 200,000/s. One `FCALL` carries
a whole batch as a single JSON argument and the function does the `XADD MAXLEN ~`s inside
Redis: one command and one round trip per batch, whatever its size, and the batch is atomic.

Both functions are idempotent. Per stream they skip any tick whose `trade_id` is not above the
newest one already there, so a batch retried after a lost reply (the connection dropped after
Redis ran it) is never added twice, and neither is a file replayed twice.

- `PUBLISH_TICKS`: KEYS = the `ticks:*` streams, then the `gaps:*` hashes, in symbol order;
  ARGV = maxlen, the rows (`[[symbol index, ts, symbol, price, size, trade_id, side, recv_ts],
  ...]`), the gaps the rows revealed (`[[symbol index, field, value], ...]`, `ingestor.gaps`).
  Replies, per symbol, the ticks added and the ticks skipped as already there.
- `PUBLISH_BACKFILL`: KEYS = `backfill:<S>`, `gaps:<S>`; ARGV = maxlen, the rows
  (`[[ts, symbol, price, size, trade_id, side, recv_ts, last_trade_id, source], ...]`), the id
  through which the symbol's gaps are done (filled, or given up) and that id plus one (Lua's
  doubles cannot add one to every int64). The records of those gaps are removed, or moved to
  start at the id after. Replies the ticks added and skipped.
"""

from __future__ import annotations

from shared import keys
from shared.schemas import RANGE_FIELDS, TICK_FIELDS

BACKFILL_FIELDS = (*TICK_FIELDS, *RANGE_FIELDS)


def _xadd_fields(names: tuple[str, ...], offset: int) -> str:
    return ", ".join(f"'{name}', row[{i + offset}]" for i, name in enumerate(names))


def _library() -> str:
    tick_fields = _xadd_fields(TICK_FIELDS, 2)
    tick_id = TICK_FIELDS.index("trade_id") + 2
    backfill_fields = _xadd_fields(BACKFILL_FIELDS, 1)
    backfill_id = BACKFILL_FIELDS.index("trade_id") + 1
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
  local gaps = cjson.decode(args[3])
  local streams = #keys / 2
  local newest, known, counts = {{}}, {{}}, {{}}
  for k = 1, streams do counts[2 * k - 1] = 0; counts[2 * k] = 0 end
  for i = 1, #gaps do
    local gap = gaps[i]
    redis.call('HSET', keys[streams + gap[1]], gap[2], gap[3])
  end
  for i = 1, #rows do
    local row = rows[i]
    local k = row[1]
    local stream = keys[k]
    if not known[k] then newest[k] = newest_trade_id(stream); known[k] = true end
    local id = row[{tick_id}]
    if above(id, newest[k]) then
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', {tick_fields})
      newest[k] = id
      counts[2 * k - 1] = counts[2 * k - 1] + 1
    else
      counts[2 * k] = counts[2 * k] + 1
    end
  end
  return counts
end

local function publish_backfill(keys, args)
  local maxlen = args[1]
  local rows = cjson.decode(args[2])
  local done = canonical(args[3])
  local newest = newest_trade_id(keys[1])
  local added, skipped = 0, 0
  for i = 1, #rows do
    local row = rows[i]
    local id = row[{backfill_id}]
    if above(id, newest) then
      redis.call('XADD', keys[1], 'MAXLEN', '~', maxlen, '*', {backfill_fields})
      newest = id
      added = added + 1
    else
      skipped = skipped + 1
    end
  end
  if done ~= nil then
    local records = redis.call('HGETALL', keys[2])
    for i = 1, #records, 2 do
      local first = canonical(records[i])
      local last = canonical(string.match(records[i + 1], '^(%d+) '))
      if first ~= nil and not above(first, done) then
        redis.call('HDEL', keys[2], records[i])
        if last ~= nil and above(last, done) then
          redis.call('HSET', keys[2], args[4], records[i + 1])
        end
      end
    end
  end
  return {{added, skipped}}
end

redis.register_function('{keys.PUBLISH_TICKS}', publish_ticks)
redis.register_function('{keys.PUBLISH_BACKFILL}', publish_backfill)
"""


LIBRARY = _library()
