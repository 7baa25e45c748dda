"""Reading ticks fast: raw XREADGROUP replies, checked against the `Tick` contract.

The redis-py reply callback for XREADGROUP turns every entry into a dict; at 50,000 ticks/s that
is most of a core. The reader's own connection keeps hiredis' nested lists instead
(`raw_reader`), and `parse_entry` checks a tick in them by the one contract of a tick entry,
`shared.schemas.tick_entry`, which the writer applies too: both accept the same entries and name
the same faults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
from redis.exceptions import ResponseError

from services.analytics.resp import command, round_trip
from shared.redis_io import client
from shared.schemas import SchemaError, check_tick, tick_entry

RawEntry = tuple[str, list[str]]
"""(entry id, [field, value, field, value, ...]) as hiredis gives it."""


ParsedTick = tuple[int, float, float, int]
"""(ts, price, size, recv_ts): a plain tuple, the cheapest record to make 50,000 times a second."""


class BadTick(ValueError):
    """An entry that is not a usable tick; the message says why."""


class TickReader:
    """XREADGROUP ... NOACK of every stream, encoded once, replies left as hiredis gives them.

    NOACK: the worker does not need redelivery, it rebuilds its state from history at start and
    sets the group to where the rebuild ended (`rebuild.set_groups`); so nothing piles up in the
    group's pending list.
    """

    def __init__(
        self, url: str, group: str, consumer: str, streams: list[str], count: int, block_ms: int
    ) -> None:
        self.redis = client(url)
        self.count = count
        self._command = command(
            "XREADGROUP", "GROUP", group, consumer, "COUNT", count, "BLOCK", block_ms, "NOACK",
            "STREAMS", *streams, *[">"] * len(streams),
        )  # fmt: skip

    async def read(self) -> Any:
        def refused(error: ResponseError) -> None:
            raise error

        return (await round_trip(self.redis, self._command, 1, refused))[0]

    async def aclose(self) -> None:
        await self.redis.aclose()


def raw_streams(reply: Any) -> list[tuple[str, list[RawEntry]]]:
    """[(stream, [(id, flat fields), ...]), ...] from a raw reply (RESP3 map or RESP2 list)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(str(stream), cast(list[RawEntry], entries)) for stream, entries in pairs]


def as_mapping(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=False))


def parse_entry(flat: list[str], symbol: str) -> ParsedTick:
    """The tick of one raw entry of `ticks:<symbol>`, by the shared contract
    (`shared.schemas.tick_entry`, which the writer applies too); `BadTick` naming the fault."""
    try:
        ts, _, _, _, _, recv_ts, price, size = tick_entry(flat, symbol)
    except SchemaError as exc:
        raise BadTick(str(exc)) from None
    return ts, price, size, recv_ts


def describe_entry(stream: str, entry_id: str, flat: list[str]) -> str:
    """The raw text kept in the dead-letter stream for an entry: JSON with its stream and id."""
    fields: Mapping[str, str] = as_mapping(flat)
    return orjson.dumps({"stream": stream, "id": entry_id, "fields": fields}).decode()


def parse_fields(fields: Mapping[str, str], symbol: str) -> ParsedTick:
    """The tick of an entry read with the ordinary (dict) replies, e.g. XRANGE."""
    try:
        ts, _, _, _, _, recv_ts, price, size = check_tick(fields, symbol)
    except SchemaError as exc:
        raise BadTick(str(exc)) from None
    return ts, price, size, recv_ts
