"""Ticks as read, checked against the `Tick` contract.

The worker reads raw XREADGROUP replies (`redis_wire.TickReader`), and `parse_entry` checks a
tick in them by the one contract of a tick entry, `shared.schemas.tick_entry`, which the writer
applies too: both accept the same entries and name the same faults.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from shared.schemas import SchemaError, check_tick, tick_entry

RawEntry = tuple[str, list[str]]
"""(entry id, [field, value, field, value, ...]) as hiredis gives it."""


ParsedTick = tuple[int, float, float, int]
"""(ts, price, size, recv_ts): a plain tuple, the cheapest record to make 50,000 times a second."""


class BadTick(ValueError):
    """An entry that is not a usable tick; the message says why."""


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
