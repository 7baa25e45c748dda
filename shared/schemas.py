"""Records that cross a Redis stream, and their encoding to and from stream fields.

Each record owns its encoding: `to_fields()` gives the XADD field map (all values strings),
`from_fields()` parses an entry read back and raises `SchemaError` naming the bad field.
Prices and sizes of ticks stay exact decimal strings end to end; SQLite stores them as text too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from functools import cache
from typing import Any, Literal, Self, TypeVar, cast

from redis.typing import EncodableT, FieldT

T = TypeVar("T")
Side = Literal["buy", "sell"]
StreamFields = dict[FieldT, EncodableT]
"""An XADD field map as redis-py types it; every value we write is a str."""
DECIMAL_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)?$")

TICK_FIELDS = ("ts", "symbol", "price", "size", "trade_id", "side", "recv_ts")
BAR_FIELDS = ("start", "open", "high", "low", "close", "volume", "vwap", "trades")
EVENT_FIELDS = ("service", "kind", "symbol", "detail", "ts")
PAIR_STAT_FIELDS = (
    "ts", "price_a", "price_b", "alpha", "beta", "spread", "zscore", "corr", "window",
)  # fmt: skip
ALERT_FIELDS = ("rule", "pair", "tf", "metric", "value", "threshold", "ts", "message")
DEADLETTER_FIELDS = ("reason", "raw", "ts")


class SchemaError(ValueError):
    """A stream entry does not match its schema; the message names the field."""


def _field(fields: Mapping[str, str], name: str) -> str:
    try:
        return fields[name]
    except KeyError:
        raise SchemaError(f"missing field {name!r}") from None


def _converted(fields: Mapping[str, str], name: str, convert: Callable[[str], T], kind: str) -> T:
    raw = _field(fields, name)
    try:
        return convert(raw)
    except ValueError:
        raise SchemaError(f"field {name!r} is not {kind}: {raw!r}") from None


def _int(fields: Mapping[str, str], name: str) -> int:
    return _converted(fields, name, int, "an integer")


def _float(fields: Mapping[str, str], name: str) -> float:
    return _converted(fields, name, float, "a number")


def _decimal(fields: Mapping[str, str], name: str) -> str:
    raw = _field(fields, name)
    if not DECIMAL_PATTERN.match(raw):
        raise SchemaError(f"field {name!r} is not a plain decimal: {raw!r}")
    return raw


def _encode(record: Any) -> StreamFields:
    """Field map of a dataclass record: floats by `repr` (shortest exact round trip), else `str`.

    Fields that are `None` (optional statistics not computed this time) are left out.
    """
    return {
        field.name: repr(value) if isinstance(value, float) else str(value)
        for field in fields(record)
        for value in (getattr(record, field.name),)
        if value is not None
    }


R = TypeVar("R")


@cache
def _plan(cls: type) -> tuple[tuple[str, Callable[[str], Any], str, bool], ...]:
    """Per record class: (field, converter, kind for errors, required), worked out once."""
    converters: dict[str, tuple[Callable[[str], Any], str]] = {
        "int": (int, "an integer"),
        "float": (float, "a number"),
        "float | None": (float, "a number"),
        "str": (str, "text"),
    }
    return tuple(
        (field.name, *converters[str(field.type)], field.default is MISSING)
        for field in fields(cls)
    )


def _decode(cls: type[R], data: Mapping[str, str]) -> R:
    """Parse a record of plain `int`, `float`, `str` fields; those with defaults may be absent."""
    values: dict[str, Any] = {}
    for name, convert, kind, required in _plan(cast(type, cls)):
        raw = data.get(name)
        if raw is None:
            if required:
                raise SchemaError(f"missing field {name!r}")
            continue
        try:
            values[name] = convert(raw)
        except ValueError:
            raise SchemaError(f"field {name!r} is not {kind}: {raw!r}") from None
    return cls(**values)


class Record:
    """A stream entry's record: `to_fields()` for XADD/HSET, `from_fields()` to read one back."""

    __slots__ = ()

    def to_fields(self) -> StreamFields:
        return _encode(self)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Self:
        return _decode(cls, fields)


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
class Bar(Record):
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


@dataclass(frozen=True, slots=True)
class Event(Record):
    """An operational event on the `events` stream (connected, disconnected, stale, gap, ...)."""

    service: str
    kind: str
    detail: str
    ts: int
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class Alert(Record):
    """A fired alert on the `alerts` stream (and published on the `alerts` channel)."""

    rule: str
    pair: str
    tf: str
    metric: str
    value: float
    threshold: float
    ts: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class PairStat(Record):
    """The statistics of one pair at one closed bar, as on `analytics:<A>-<B>:<tf>[...]`.

    Over the last `n` aligned bars (at most `window`) of close prices A and B:
    `alpha`, `beta` are the hedge of A on B by `method` (`ols`, `kalman` or `huber`);
    `spread = A - beta * B` at this bar; `spread_mean`, `spread_std` (ddof 1) are those of
    `s_i = A_i - beta * B_i` over the window, so `zscore = (spread - spread_mean) / spread_std`;
    `corr` is the Pearson correlation of the two legs' log returns over the window.
    The stationarity fields are present only on the bars where they were computed.
    """

    ts: int
    price_a: float
    price_b: float
    alpha: float
    beta: float
    spread: float
    zscore: float
    corr: float
    window: int
    n: int
    method: str
    spread_mean: float
    spread_std: float
    adf_stat: float | None = None
    adf_pvalue: float | None = None
    half_life: float | None = None
    coint_pvalue: float | None = None


@dataclass(frozen=True, slots=True)
class AnalyticsRequest(Record):
    """A one-off request to the analytics worker on `analytics-requests`: `kind` `adf` runs the
    stationarity tests of the view `view` (a `shared.views` id) now; `ts` is when it was asked."""

    kind: str
    view: str
    ts: int
