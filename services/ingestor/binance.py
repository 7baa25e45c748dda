"""Binance USD-M Futures trade frames to `Tick`s: pure parsing and normalization, no I/O.

A raw `@trade` event (https://developers.binance.com/docs/derivatives/usds-margined-futures/
websocket-market-streams/Trade-Streams) looks like::

    {"e":"trade","E":1765892498712,"T":1765892498698,"s":"BTCUSDT","t":6905373851,
     "p":"87162.10","q":"0.003","X":"MARKET","m":true}

`X` is the execution type: only `MARKET` prints are market trades; `NA` (a `p:"0", q:"0"`
placeholder), `INSURANCE_FUND` and `ADL` prints are counted, never published. `m: true` means
the buyer was the maker, so the aggressor sold. An `@aggTrade` event carries the aggregate id
in `a` and no `X` (it aggregates market trades only)::

    {"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10",
     "f":23961322,"l":23961322,"T":1626992741421,"m":false}

The combined form (`/stream?streams=a@trade/b@trade`) wraps each event in
`{"stream": "<name>", "data": {...}}`. Unknown fields are ignored (2026 frames carry `st`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from shared.schemas import DECIMAL_PATTERN, INT64_MAX, Side, Tick, decimal_value, shown

MAX_FRAME_BYTES = 65_536
"""A frame above this size is not a trade event: it is dead-lettered, the connection goes on."""
NON_MARKET_TYPES = frozenset({"NA", "INSURANCE_FUND", "ADL"})


class FrameError(ValueError):
    """A frame that is not a well-formed trade event; the message is the dead-letter reason."""


@dataclass(frozen=True, slots=True)
class NonMarketPrint:
    """A trade event that is not a market trade (`NA`, `INSURANCE_FUND`, `ADL`, or zero)."""

    symbol: str
    trade_id: int
    kind: str
    ts: int


class TickRow(NamedTuple):
    """A tick as the fields of `Tick` (`TICK_FIELDS`, in order): a tuple, built about ten
    times faster than the checked record."""

    ts: int
    symbol: str
    price: str
    size: str
    trade_id: int
    side: Side
    recv_ts: int


_ZERO_BY_DECIMAL: dict[str, bool] = {}
_ZERO_CACHE_SIZE = 100_000


def _zero_if_decimal(text: str) -> bool | None:
    """Whether `text` is zero if it is a decimal a tick may carry (`shared.schemas.
    decimal_value`: plain, ASCII, finite), None if it is not one. A decimal too small for a
    double counts as zero, as the tick contract reads it.

    Memoized: prices and sizes repeat all day, and a dictionary hit is about twenty times
    cheaper than the regular expression. The cache is emptied when it grows too big.
    """
    known = _ZERO_BY_DECIMAL.get(text)
    if known is not None:
        return known
    value = decimal_value(text)
    if value is None:
        return None
    if len(_ZERO_BY_DECIMAL) >= _ZERO_CACHE_SIZE:
        _ZERO_BY_DECIMAL.clear()
    zero = _ZERO_BY_DECIMAL[text] = value == 0
    return zero


def _require(payload: Mapping[str, Any], name: str) -> Any:
    try:
        return payload[name]
    except KeyError:
        raise FrameError(f"{shown(payload.get('e'))} event without field {name!r}") from None


def _check_integer(payload: Mapping[str, Any], name: str) -> None:
    value = _require(payload, name)
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise FrameError(f"field {name!r} is not an integer 0..2^63-1: {shown(value)}")


def _check_decimal(payload: Mapping[str, Any], name: str) -> None:
    value = _require(payload, name)
    if type(value) is not str or not DECIMAL_PATTERN.match(value):
        raise FrameError(f"field {name!r} is not a decimal string: {shown(value)}")
    if decimal_value(value) is None:
        raise FrameError(f"field {name!r} is too large: {shown(value)}")


def _explain(payload: Mapping[str, Any], symbols: Collection[str] | None) -> FrameError:
    """Why a trade event failed the fast checks of `normalize_trade`, as a `FrameError`."""
    try:
        kind = payload.get("e")
        if kind not in ("trade", "aggTrade"):
            raise FrameError(f"not a trade event: e={shown(kind)}")
        _check_integer(payload, "t" if kind == "trade" else "a")
        if kind == "trade":
            execution = _require(payload, "X")
            if type(execution) is not str:
                raise FrameError(f"field 'X' is not a string: {shown(execution)}")
            if execution != "MARKET" and execution not in NON_MARKET_TYPES:
                raise FrameError(f"unknown execution type X={shown(execution)}")
        symbol = _require(payload, "s")
        if type(symbol) is not str or (symbols is not None and symbol not in symbols):
            raise FrameError(f"unexpected symbol {shown(symbol)}")
        _check_integer(payload, "T")
        _check_decimal(payload, "p")
        _check_decimal(payload, "q")
        maker = _require(payload, "m")
        if type(maker) is not bool:
            raise FrameError(f"field 'm' is not true or false: {shown(maker)}")
    except FrameError as exc:
        return exc
    return FrameError("malformed trade event")


def normalize_trade(
    payload: Mapping[str, Any], recv_ts: int, symbols: Collection[str] | None = None
) -> TickRow | NonMarketPrint:
    """A decoded `trade` or `aggTrade` event as a `TickRow`, or a `NonMarketPrint`.

    `symbols`, when given, are the symbols this connection expects; any other is an error.
    Raises `FrameError` naming what is wrong. Written for speed (it runs for every frame):
    one pass of type checks, and the detailed diagnosis only when one fails.
    """
    try:
        kind = payload["e"]
        if kind == "trade":
            trade_id = payload["t"]
            execution = payload["X"]
        elif kind == "aggTrade":
            trade_id = payload["a"]
            execution = "MARKET"
        else:
            raise FrameError(f"not a trade event: e={shown(kind)}")
        symbol = payload["s"]
        ts = payload["T"]
        price = payload["p"]
        size = payload["q"]
        maker = payload["m"]
    except (KeyError, TypeError):
        raise _explain(payload, symbols) from None
    if not (
        type(trade_id) is int
        and type(ts) is int
        and type(price) is str
        and type(size) is str
        and type(maker) is bool
        and type(execution) is str
        and type(symbol) is str
        and (symbols is None or symbol in symbols)
        and 0 <= trade_id <= INT64_MAX
        and 0 <= ts <= INT64_MAX
    ):
        raise _explain(payload, symbols)
    zero_price = _zero_if_decimal(price)
    zero_size = _zero_if_decimal(size)
    if zero_price is None or zero_size is None:
        raise _explain(payload, symbols)
    if execution != "MARKET":
        if execution not in NON_MARKET_TYPES:
            raise _explain(payload, symbols)
        return NonMarketPrint(symbol, trade_id, execution, ts)
    if zero_price or zero_size:
        return NonMarketPrint(symbol, trade_id, "ZERO", ts)
    return TickRow(ts, symbol, price, size, trade_id, "sell" if maker else "buy", recv_ts)


def decode_frame(raw: bytes | str) -> dict[str, Any]:
    """The event object of a frame, unwrapped from a combined-stream envelope if it has one."""
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(raw)} bytes is over the {MAX_FRAME_BYTES} byte limit")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if type(message) is not dict:
        raise FrameError(f"not a JSON object but {type(message).__name__}")
    if "stream" in message and "data" in message:
        message = message["data"]
        if type(message) is not dict:
            raise FrameError("combined-stream envelope whose data is not an object")
    return message


def parse_frame(
    raw: bytes | str, recv_ts: int, symbols: Collection[str] | None = None
) -> TickRow | NonMarketPrint:
    """A raw WebSocket frame as a `TickRow` or a `NonMarketPrint`; `FrameError` otherwise."""
    return normalize_trade(decode_frame(raw), recv_ts, symbols)


def parse_tick(raw: bytes | str, recv_ts: int) -> Tick | NonMarketPrint:
    """`parse_frame` with the row as the `Tick` record (tests, tools; the hot path keeps rows)."""
    parsed = parse_frame(raw, recv_ts)
    return parsed if isinstance(parsed, NonMarketPrint) else Tick(*parsed)
