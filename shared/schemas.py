"""Records that cross a Redis stream, and their encoding to and from stream fields.

Each record owns its encoding: `to_fields()` gives the XADD field map (all values strings),
`from_fields()` parses an entry read back and raises `SchemaError` naming the bad field.
Prices and sizes of ticks stay exact decimal strings end to end; SQLite stores them as text too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from redis.typing import EncodableT, FieldT

Side = Literal["buy", "sell"]
StreamFields = dict[FieldT, EncodableT]
"""An XADD field map as redis-py types it; every value we write is a str."""
DECIMAL_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)?$")

TICK_FIELDS = ("ts", "symbol", "price", "size", "trade_id", "side", "recv_ts")
BAR_FIELDS = ("start", "open", "high", "low", "close", "volume", "vwap", "trades")
EVENT_FIELDS = ("service", "kind", "symbol", "detail", "ts")
ALERT_FIELDS = ("rule", "pair", "tf", "metric", "value", "threshold", "ts", "message")
DEADLETTER_FIELDS = ("reason", "raw", "ts")


class SchemaError(ValueError):
    """A stream entry does not match its schema; the message names the field."""


def _field(fields: Mapping[str, str], name: str) -> str:
    try:
        return fields[name]
    except KeyError:
        raise SchemaError(f"missing field {name!r}") from None


def _int(fields: Mapping[str, str], name: str) -> int:
    raw = _field(fields, name)
    try:
        return int(raw)
    except ValueError:
        raise SchemaError(f"field {name!r} is not an integer: {raw!r}") from None


def _float(fields: Mapping[str, str], name: str) -> float:
    raw = _field(fields, name)
    try:
        return float(raw)
    except ValueError:
        raise SchemaError(f"field {name!r} is not a number: {raw!r}") from None


def _decimal(fields: Mapping[str, str], name: str) -> str:
    raw = _field(fields, name)
    if not DECIMAL_PATTERN.match(raw):
        raise SchemaError(f"field {name!r} is not a plain decimal: {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Tick:
    """One normalized trade, as published on `ticks:<SYMBOL>`.

    `ts` is Binance's trade time `T` and `recv_ts` the local receive time, both epoch ms;
    `side` is the aggressor's side; `price` and `size` are the exchange's decimal strings.
    """

    ts: int
    symbol: str
    price: str
    size: str
    trade_id: int
    side: Side
    recv_ts: int

    def to_fields(self) -> StreamFields:
        return {
            "ts": str(self.ts),
            "symbol": self.symbol,
            "price": self.price,
            "size": self.size,
            "trade_id": str(self.trade_id),
            "side": self.side,
            "recv_ts": str(self.recv_ts),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Tick:
        side = _field(fields, "side")
        if side not in ("buy", "sell"):
            raise SchemaError(f"field 'side' is not buy or sell: {side!r}")
        symbol = _field(fields, "symbol")
        if not symbol:
            raise SchemaError("field 'symbol' is empty")
        return cls(
            ts=_int(fields, "ts"),
            symbol=symbol,
            price=_decimal(fields, "price"),
            size=_decimal(fields, "size"),
            trade_id=_int(fields, "trade_id"),
            side="buy" if side == "buy" else "sell",
            recv_ts=_int(fields, "recv_ts"),
        )


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed bar of one symbol at one timeframe, as published on `bars:<tf>:<SYMBOL>`.

    `start` is the bar's opening time (epoch ms, a multiple of the timeframe). A bar with no
    trades repeats the previous close with `volume` 0 and `trades` 0, so series stay aligned.
    """

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trades: int

    def to_fields(self) -> StreamFields:
        return {
            "start": str(self.start),
            "open": repr(self.open),
            "high": repr(self.high),
            "low": repr(self.low),
            "close": repr(self.close),
            "volume": repr(self.volume),
            "vwap": repr(self.vwap),
            "trades": str(self.trades),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Bar:
        return cls(
            start=_int(fields, "start"),
            open=_float(fields, "open"),
            high=_float(fields, "high"),
            low=_float(fields, "low"),
            close=_float(fields, "close"),
            volume=_float(fields, "volume"),
            vwap=_float(fields, "vwap"),
            trades=_int(fields, "trades"),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """An operational event on the `events` stream (connected, disconnected, stale, gap, ...)."""

    service: str
    kind: str
    detail: str
    ts: int
    symbol: str = ""

    def to_fields(self) -> StreamFields:
        return {
            "service": self.service,
            "kind": self.kind,
            "symbol": self.symbol,
            "detail": self.detail,
            "ts": str(self.ts),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Event:
        return cls(
            service=_field(fields, "service"),
            kind=_field(fields, "kind"),
            symbol=fields.get("symbol", ""),
            detail=fields.get("detail", ""),
            ts=_int(fields, "ts"),
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """A fired alert on the `alerts` stream (and published on the `alerts` channel)."""

    rule: str
    pair: str
    tf: str
    metric: str
    value: float
    threshold: float
    ts: int
    message: str

    def to_fields(self) -> StreamFields:
        return {
            "rule": self.rule,
            "pair": self.pair,
            "tf": self.tf,
            "metric": self.metric,
            "value": repr(self.value),
            "threshold": repr(self.threshold),
            "ts": str(self.ts),
            "message": self.message,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Alert:
        return cls(
            rule=_field(fields, "rule"),
            pair=_field(fields, "pair"),
            tf=_field(fields, "tf"),
            metric=_field(fields, "metric"),
            value=_float(fields, "value"),
            threshold=_float(fields, "threshold"),
            ts=_int(fields, "ts"),
            message=fields.get("message", ""),
        )
