"""Reading ticks fast: raw XREADGROUP replies, checked against the `Tick` contract.

The redis-py reply callback for XREADGROUP turns every entry into a dict; at 50,000 ticks/s that
is most of a core. The reader's own connection keeps hiredis' nested lists instead
(`raw_reader`), and `parse_entry` reads a tick from them by position when the fields come in the
order `Tick.to_fields()` writes them. Anything else goes through `Tick.from_fields`, so the same
entries are accepted and the same errors named as everywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import orjson

from shared.redis_io import Redis, client
from shared.schemas import TICK_FIELDS, SchemaError, Tick

_LAYOUT = list(TICK_FIELDS)
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SIDES = ("buy", "sell")

RawEntry = tuple[str, list[str]]
"""(entry id, [field, value, field, value, ...]) as hiredis gives it."""


ParsedTick = tuple[int, float, float, int]
"""(ts, price, size, recv_ts): a plain tuple, the cheapest record to make 50,000 times a second."""


class BadTick(ValueError):
    """An entry that is not a usable tick; the message says why."""


def raw_reader(url: str) -> Redis:
    """A connection whose XREADGROUP replies are hiredis' lists, unconverted."""
    reader = client(url)
    reader.set_response_callback("XREADGROUP", lambda response, **options: response)
    return reader


def raw_streams(reply: Any) -> list[tuple[str, list[RawEntry]]]:
    """[(stream, [(id, flat fields), ...]), ...] from a raw reply (RESP3 map or RESP2 list)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(str(stream), cast(list[RawEntry], entries)) for stream, entries in pairs]


def as_mapping(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=False))


def _checked(tick: Tick, symbol: str) -> ParsedTick:
    if tick.symbol != symbol:
        raise BadTick(f"symbol {tick.symbol!r} on the stream of {symbol}")
    price, size = float(tick.price), float(tick.size)
    if not price > 0:
        raise BadTick(f"price {tick.price!r} is not above zero")
    if not size > 0:
        raise BadTick(f"size {tick.size!r} is not above zero")
    return tick.ts, price, size, tick.recv_ts


def parse_entry(flat: list[str], symbol: str) -> ParsedTick:
    """The tick of one raw entry of `ticks:<symbol>`; `BadTick` naming what is wrong."""
    if len(flat) == 14 and flat[0::2] == _LAYOUT:
        price, size, side = flat[5], flat[7], flat[11]
        if (
            flat[3] == symbol
            and side in _SIDES
            and _DECIMAL.fullmatch(price)
            and _DECIMAL.fullmatch(size)
        ):
            try:
                ts, recv_ts = int(flat[1]), int(flat[13])
                int(flat[9])
            except ValueError:
                pass
            else:
                p, q = float(price), float(size)
                if p > 0 and q > 0:
                    return ts, p, q, recv_ts
    try:
        tick = Tick.from_fields(as_mapping(flat))
    except SchemaError as exc:
        raise BadTick(str(exc)) from None
    return _checked(tick, symbol)


def describe_entry(stream: str, entry_id: str, flat: list[str]) -> str:
    """The raw text kept in the dead-letter stream for an entry: JSON with its stream and id."""
    fields: Mapping[str, str] = as_mapping(flat)
    return orjson.dumps({"stream": stream, "id": entry_id, "fields": fields}).decode()


def parse_fields(fields: Mapping[str, str], symbol: str) -> ParsedTick:
    """The tick of an entry read with the ordinary (dict) replies, e.g. XRANGE."""
    try:
        tick = Tick.from_fields(fields)
    except SchemaError as exc:
        raise BadTick(str(exc)) from None
    return _checked(tick, symbol)
