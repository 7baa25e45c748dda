"""The Redis side of the writer: consumer group `writer` on every `ticks:<SYMBOL>` stream, and
on every `backfill:<SYMBOL>` stream (the ticks the ingestor fetched from REST for gaps), alike.

Reads go through a client of their own whose XREADGROUP and XAUTOCLAIM replies skip redis-py's
per-entry dict building (measured: a third of the bare read loop's time); `parse_entries` turns
the raw entries into table rows and rejects in one pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared import keys
from shared.redis_io import Redis, client, ensure_group
from shared.schemas import SchemaError, range_entry, tick_entry
from shared.streamids import id_ms

TableRow = tuple[str, int, int, str, str, str, int]
"""A `ticks` table row of one trade from the socket: symbol, trade_id, ts, price, size, side,
recv_ts (`last_trade_id` = trade_id, `source` = ws)."""
RangeTableRow = tuple[str, int, int, str, str, str, int, int, str]
"""A back-filled row: a `TableRow`, then last_trade_id and source."""
RawEntry = tuple[str, list[str] | None]
"""(entry id, [field, value, ...]) as Redis sends it; None when the entry was trimmed away."""

TRIMMED = "entry trimmed from the stream before it was stored"


def _raw_reply(response: Any, **_options: Any) -> Any:
    return response


async def _command(redis: Redis, *args: Any) -> Any:
    return await redis.execute_command(*args)  # type: ignore[no-untyped-call]


def tick_row(symbol: str, values: list[str]) -> TableRow:
    """Validate one entry of `ticks:<symbol>` into a table row by the shared contract
    (`shared.schemas.tick_entry`); `SchemaError` names the fault."""
    ts, price, size, trade_id, side, recv_ts, _, _ = tick_entry(values, symbol)
    return symbol, trade_id, ts, price, size, side, recv_ts


def range_row(symbol: str, values: list[str]) -> RangeTableRow:
    """Validate one entry of `backfill:<symbol>` (`shared.schemas.range_entry`)."""
    (ts, price, size, trade_id, side, recv_ts, _, _), last_trade_id, source = range_entry(
        values, symbol
    )
    return symbol, trade_id, ts, price, size, side, recv_ts, last_trade_id, source


@dataclass(frozen=True, slots=True)
class Reject:
    """An entry that cannot be stored: dead-lettered with its raw fields, then acknowledged."""

    stream: str
    entry_id: str
    values: list[str] | None
    reason: str

    def raw(self) -> str:
        fields = None
        if self.values is not None:
            it = iter(self.values)
            fields = dict(zip(it, it, strict=False))
        record = {"stream": self.stream, "id": self.entry_id, "fields": fields}
        return orjson.dumps(record).decode()


@dataclass(slots=True)
class Batch:
    """Entries read from the streams: the rows to insert, the rejects, and every id to ack."""

    rows: list[TableRow | RangeTableRow] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)
    oldest_ms: int | None = None
    trimmed: int = 0
    """Entries still pending whose content Redis no longer has (trimmed by MAXLEN)."""

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.ids.values())

    def merge(self, other: Batch) -> None:
        self.rows.extend(other.rows)
        self.rejects.extend(other.rejects)
        self.trimmed += other.trimmed
        for stream, ids in other.ids.items():
            self.ids.setdefault(stream, []).extend(ids)
        if other.oldest_ms is not None:
            self.oldest_ms = min(self.oldest_ms or other.oldest_ms, other.oldest_ms)

    def add(
        self, stream: str, symbol: str, entries: Sequence[RawEntry], *, ranged: bool = False
    ) -> None:
        """`ranged`: entries of a `backfill:*` stream (they carry the ids they cover)."""
        if not entries:
            return
        ids = self.ids.setdefault(stream, [])
        rows, rejects = self.rows, self.rejects
        row_of = range_row if ranged else tick_row
        for entry_id, values in entries:
            ids.append(entry_id)
            if values is None:
                rejects.append(Reject(stream, entry_id, None, TRIMMED))
                self.trimmed += 1
                continue
            try:
                rows.append(row_of(symbol, values))
            except (SchemaError, ValueError, IndexError) as exc:
                rejects.append(Reject(stream, entry_id, values, str(exc)))
        first = id_ms(entries[0][0])
        if self.oldest_ms is None or first < self.oldest_ms:
            self.oldest_ms = first


@dataclass(frozen=True)
class Lag:
    """What the group has not committed yet: entries and the age of the oldest one."""

    entries: int
    ms: int


class TickStreams:
    """Consumer `consumer` of group `writer` on the tick streams of `symbols`."""

    def __init__(self, url: str, consumer: str, symbols: Iterable[str]) -> None:
        self.consumer = consumer
        symbols = tuple(symbols)
        self.symbol_of = {keys.ticks(symbol): symbol for symbol in symbols}
        self.ranged = {keys.backfill(symbol) for symbol in symbols}
        self.symbol_of.update({keys.backfill(symbol): symbol for symbol in symbols})
        self.redis: Redis = client(url)
        for command in ("XREADGROUP", "XAUTOCLAIM", "XCLAIM"):
            self.redis.set_response_callback(command, _raw_reply)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ensure_groups(self) -> list[str]:
        """Create the group on each stream that lacks it, from the first entry; those created."""
        return [
            stream
            for stream in self.symbol_of
            if await ensure_group(self.redis, stream, keys.WRITER_GROUP, "0")
        ]

    async def read(self, *, pending: bool, count: int, block_ms: int | None) -> Batch:
        """XREADGROUP: new entries (`>`), or with `pending` this consumer's own unacknowledged
        ones from the start (a restart after a crash finishes them first)."""
        after = "0" if pending else ">"
        args: list[Any] = ["GROUP", keys.WRITER_GROUP, self.consumer, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", *self.symbol_of, *([after] * len(self.symbol_of))]
        reply = await _command(self.redis, "XREADGROUP", *args)
        batch = Batch()
        for stream, entries in _per_stream(reply):
            batch.add(stream, self.symbol_of[stream], entries, ranged=stream in self.ranged)
        return batch

    async def claim(
        self, stream: str, min_idle_ms: int, start: str, count: int
    ) -> tuple[Batch, str, list[str]]:
        """XAUTOCLAIM entries other consumers left pending longer than `min_idle_ms`.

        Returns the claimed entries, the cursor to continue from (`0-0` when the scan is done)
        and the ids Redis dropped from the pending list because they were trimmed away.
        """
        reply = await _command(
            self.redis,
            "XAUTOCLAIM", stream, keys.WRITER_GROUP, self.consumer, min_idle_ms, start,
            "COUNT", count,
        )  # fmt: skip
        cursor, entries = str(reply[0]), reply[1]
        deleted = [str(entry_id) for entry_id in (reply[2] if len(reply) > 2 else [])]
        batch = Batch()
        claimed = [(e[0], e[1]) for e in entries if e]
        batch.add(stream, self.symbol_of[stream], claimed, ranged=stream in self.ranged)
        return batch, cursor, deleted

    async def keep_alive(self, ttl_ms: int) -> None:
        """Renew this writer's liveness key (`keys.writer_alive`)."""
        await self.redis.set(keys.writer_alive(self.consumer), "1", px=ttl_ms)

    async def retire(self) -> None:
        """A clean stop: the liveness key goes at once."""
        await self.redis.delete(keys.writer_alive(self.consumer))

    async def dead_owners(self) -> dict[str, list[str]]:
        """Per stream, the other consumers with pending entries whose liveness key is gone (a
        writer killed, or stopped for good, that left work behind)."""
        streams = list(self.symbol_of)
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xinfo_consumers(stream, keys.WRITER_GROUP)
        owners: dict[str, list[str]] = {}
        for stream, consumers in zip(
            streams, await pipe.execute(raise_on_error=False), strict=True
        ):
            if isinstance(consumers, Exception):
                continue
            for info in consumers:
                name = str(info["name"])
                if name != self.consumer and int(info["pending"]) > 0:
                    owners.setdefault(stream, []).append(name)
        names = sorted({name for found in owners.values() for name in found})
        if not names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.exists(keys.writer_alive(name))
        gone = {name for name, found in zip(names, await pipe.execute(), strict=True) if not found}
        return {
            stream: [name for name in found if name in gone]
            for stream, found in owners.items()
            if any(name in gone for name in found)
        }

    async def take_over(self, stream: str, owner: str, count: int) -> tuple[Batch, list[str]]:
        """XPENDING of `owner` + XCLAIM to this consumer, whatever their idle time: up to `count`
        entries, and the ids the stream no longer has (trimmed away before they were stored)."""
        pending = await self.redis.xpending_range(
            stream, keys.WRITER_GROUP, min="-", max="+", count=count, consumername=owner
        )
        ids = [str(entry["message_id"]) for entry in pending]
        if not ids:
            return Batch(), []
        reply = await _command(
            self.redis, "XCLAIM", stream, keys.WRITER_GROUP, self.consumer, 0, *ids
        )
        claimed = [(str(e[0]), e[1]) for e in reply if e]
        batch = Batch()
        batch.add(stream, self.symbol_of[stream], claimed, ranged=stream in self.ranged)
        found = {entry_id for entry_id, _ in claimed}
        absent = [entry_id for entry_id in ids if entry_id not in found]
        if not absent:
            return batch, []
        # Not claimed: trimmed away, or acknowledged (or taken) by another writer meanwhile.
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in absent:
            pipe.xrange(stream, entry_id, entry_id, count=1)
        still = await pipe.execute()
        return batch, [entry_id for entry_id, kept in zip(absent, still, strict=True) if not kept]

    async def ack(self, ids: Mapping[str, list[str]]) -> int:
        """XACK every id, one command per stream in one round trip; the number acknowledged."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, stream_ids in ids.items():
            if stream_ids:
                pipe.xack(stream, keys.WRITER_GROUP, *stream_ids)
        return sum(int(n) for n in await pipe.execute())

    async def forget_idle_consumers(self, min_idle_ms: int) -> list[str]:
        """Remove consumers with nothing pending, idle longer than `min_idle_ms` (the names a
        crashed writer left behind; a live one reappears on its next read)."""
        removed = []
        for stream in self.symbol_of:
            for info in await self.redis.xinfo_consumers(stream, keys.WRITER_GROUP):
                name, pending, idle = str(info["name"]), int(info["pending"]), int(info["idle"])
                if name != self.consumer and pending == 0 and idle > min_idle_ms:
                    await self.redis.xgroup_delconsumer(stream, keys.WRITER_GROUP, name)
                    removed.append(name)
        return removed

    async def lag(self) -> Lag:
        """Entries of the streams not yet committed by the group (undelivered + pending), and
        the age of the oldest of them; 0 and 0 when SQLite has everything."""
        entries, oldest = 0, None
        for stream in self.symbol_of:
            groups = await self.redis.xinfo_groups(stream)
            group = next((g for g in groups if g["name"] == keys.WRITER_GROUP), None)
            if group is None:
                continue
            pending = int(group["pending"])
            undelivered = group.get("lag")
            if undelivered is None:
                # Redis cannot count past deleted entries: the stream's length bounds it.
                undelivered = await self.redis.xlen(stream)
            entries += pending + int(undelivered)
            candidates = []
            if pending:
                summary = await self.redis.xpending(stream, keys.WRITER_GROUP)
                if summary["min"] is not None:
                    candidates.append(id_ms(str(summary["min"])))
            if int(undelivered):
                first = await self.redis.xrange(
                    stream, f"({group['last-delivered-id']}", "+", count=1
                )
                if first:
                    candidates.append(id_ms(str(first[0][0])))
            if candidates:
                oldest = min(candidates) if oldest is None else min(oldest, *candidates)
        age = 0 if oldest is None else max(0, time.time_ns() // 1_000_000 - oldest)
        return Lag(entries, age)


def _per_stream(reply: Any) -> Iterable[tuple[str, list[RawEntry]]]:
    """RESP3 replies are maps, RESP2 replies lists of pairs; both to (stream, entries)."""
    if not reply:
        return ()
    if isinstance(reply, dict):
        return reply.items()
    return ((stream, entries) for stream, entries in reply)


__all__ = [
    "TRIMMED", "Batch", "Lag", "RangeTableRow", "Reject", "TableRow", "TickStreams", "range_row",
    "tick_row",
]  # fmt: skip
