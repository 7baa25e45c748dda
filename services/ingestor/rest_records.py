"""Binance USD-M Futures REST answers as typed records: pure parsing, every fault named.

`GET /fapi/v1/trades` and `GET /fapi/v1/historicalTrades` answer a list of trades::

    [{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.00",
      "time":1499865549590,"isBuyerMaker":true}]

`GET /fapi/v1/aggTrades` a list of aggregate trades, each covering trade ids `f..l` of one
taker order at one price and time::

    [{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,
      "m":true}]

`GET /fapi/v1/time` answers `{"serverTime":1499827319559}`, and an error
`{"code":-1121,"msg":"Invalid symbol."}`. Only market trades are in these lists (insurance fund
and ADL trades are not), so ids missing between two listed trades are not market trades.
Unknown fields are ignored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from shared.schemas import INT64_MAX, decimal_value, shown

R = TypeVar("R")


class RestAnswerError(ValueError):
    """An answer that is not what the endpoint sends; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class RestTrade:
    """One trade of `trades` or `historicalTrades`."""

    id: int
    price: str
    qty: str
    time: int
    buyer_maker: bool


@dataclass(frozen=True, slots=True)
class AggTrade:
    """One aggregate trade of `aggTrades`: trade ids `first_id..last_id`, one price and time."""

    id: int
    price: str
    qty: str
    first_id: int
    last_id: int
    time: int
    buyer_maker: bool


@dataclass(frozen=True, slots=True)
class RestError:
    """Binance's error body."""

    code: int
    msg: str


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RestAnswerError(f"not JSON: {exc}") from None


def _integer(item: Mapping[str, Any], name: str) -> int:
    value = item.get(name)
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise RestAnswerError(f"field {name!r} is not an integer 0..2^63-1: {shown(value)}")
    return value


def _amount(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if type(value) is not str:
        raise RestAnswerError(f"field {name!r} is not a decimal string: {shown(value)}")
    number = decimal_value(value)
    if number is None or not number > 0:
        raise RestAnswerError(f"field {name!r} is not a decimal above zero: {shown(value)}")
    return value


def _flag(item: Mapping[str, Any], name: str) -> bool:
    value = item.get(name)
    if type(value) is not bool:
        raise RestAnswerError(f"field {name!r} is not true or false: {shown(value)}")
    return value


def _listed(body: bytes, parse: Callable[[Mapping[str, Any]], R]) -> list[R]:
    decoded = _decode(body)
    if type(decoded) is not list:
        raise RestAnswerError(f"not a JSON list but {type(decoded).__name__}")
    items = []
    for position, item in enumerate(decoded):
        if type(item) is not dict:
            raise RestAnswerError(f"item {position} is not an object: {shown(item)}")
        try:
            items.append(parse(item))
        except RestAnswerError as exc:
            raise RestAnswerError(f"item {position}: {exc}") from None
    return items


def _trade(item: Mapping[str, Any]) -> RestTrade:
    return RestTrade(
        id=_integer(item, "id"),
        price=_amount(item, "price"),
        qty=_amount(item, "qty"),
        time=_integer(item, "time"),
        buyer_maker=_flag(item, "isBuyerMaker"),
    )


def _aggregate(item: Mapping[str, Any]) -> AggTrade:
    aggregate = AggTrade(
        id=_integer(item, "a"),
        price=_amount(item, "p"),
        qty=_amount(item, "q"),
        first_id=_integer(item, "f"),
        last_id=_integer(item, "l"),
        time=_integer(item, "T"),
        buyer_maker=_flag(item, "m"),
    )
    if aggregate.last_id < aggregate.first_id:
        raise RestAnswerError(f"aggregate {aggregate.id} ends (l) before it starts (f)")
    return aggregate


def _ascending(ids: list[int], what: str) -> None:
    for before, after in itertools.pairwise(ids):
        if after <= before:
            raise RestAnswerError(f"{what} ids not in ascending order: {before} then {after}")


def parse_trades(body: bytes) -> list[RestTrade]:
    """The trades of a `trades` or `historicalTrades` answer, in ascending id order."""
    trades = _listed(body, _trade)
    _ascending([t.id for t in trades], "trade")
    return trades


def parse_agg_trades(body: bytes) -> list[AggTrade]:
    """The aggregates of an `aggTrades` answer; ascending, their id ranges disjoint."""
    aggregates = _listed(body, _aggregate)
    _ascending([a.id for a in aggregates], "aggregate")
    for before, after in itertools.pairwise(aggregates):
        if after.first_id <= before.last_id:
            raise RestAnswerError(
                f"aggregates {before.id} and {after.id} overlap "
                f"(trade ids {before.first_id}..{before.last_id} and "
                f"{after.first_id}..{after.last_id})"
            )
    return aggregates


def parse_server_time(body: bytes) -> int:
    decoded = _decode(body)
    if type(decoded) is not dict:
        raise RestAnswerError(f"not a JSON object but {type(decoded).__name__}")
    return _integer(decoded, "serverTime")


def parse_error(body: bytes) -> RestError | None:
    """Binance's `{"code": ..., "msg": ...}`, None when the body is not one."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(decoded) is not dict or type(decoded.get("code")) is not int:
        return None
    return RestError(decoded["code"], str(decoded.get("msg", "")))
