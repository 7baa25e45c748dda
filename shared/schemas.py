"""Records that cross a Redis stream, and their encoding to and from stream fields.

Each record owns its encoding: `to_fields()` gives the XADD field map (all values strings),
`from_fields()` parses an entry read back and raises `SchemaError` naming the bad field.
Prices and sizes of ticks stay exact decimal strings end to end; SQLite stores them as text too.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from functools import cache
from typing import Any, Literal, Self, TypeVar, cast

import numpy as np
from redis.typing import EncodableT, FieldT

from shared.table import Table

T = TypeVar("T")
Side = Literal["buy", "sell"]
StreamFields = dict[FieldT, EncodableT]
"""An XADD field map as redis-py types it; every value we write is a str."""
DECIMAL_PATTERN = re.compile(r"^[0-9]+(?:\.[0-9]+)?\Z")
"""A plain decimal in ASCII digits, the whole text (`\\Z`: no newline after it either)."""
UNSIGNED_PATTERN = re.compile(r"^[0-9]{1,19}\Z")
INT64_MAX = 2**63 - 1

TICK_FIELDS = ("ts", "symbol", "price", "size", "trade_id", "side", "recv_ts")
RANGE_FIELDS = ("last_trade_id", "source")
"""The fields a back-filled tick (`backfill:<SYMBOL>`) carries after `TICK_FIELDS`."""
TickSource = Literal["ws", "rest", "rest-agg"]
TICK_SOURCES: tuple[TickSource, ...] = ("ws", "rest", "rest-agg")
"""Where a tick came from: the WebSocket stream, REST's exact trades (`historicalTrades`), or
REST's aggregate trades (`aggTrades`: one tick for the missing trade ids of one aggregate)."""
DEADLETTER_FIELDS = ("reason", "raw", "ts")


class SchemaError(ValueError):
    """A stream entry does not match its schema; the message names the field."""


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel = 3


def shown(value: object) -> str:
    """A value as an error message quotes it: `repr`, cut short (huge or deeply nested input
    must not make a huge message, nor fail on Python's recursion limit)."""
    try:
        return _SHOWN.repr(value)
    except ValueError:  # an int beyond Python's 4,300-digit string conversion
        return f"<{type(value).__name__} too long to show>"


def _field(fields: Mapping[str, str], name: str) -> str:
    try:
        return fields[name]
    except KeyError:
        raise SchemaError(f"missing field {name!r}") from None


def id_or_time(text: str) -> int | None:
    """A trade id or an epoch-ms time as a tick carries it: ASCII digits only, no sign, no
    spaces, within a signed 64-bit integer (SQLite's INTEGER); None for anything else."""
    if not UNSIGNED_PATTERN.match(text):
        return None
    value = int(text)
    return value if value <= INT64_MAX else None


def decimal_value(text: str) -> float | None:
    """The value of a price or size as a tick carries it: a plain decimal in ASCII digits,
    finite as a double; None for anything else. Zero is a value (the caller decides)."""
    if not DECIMAL_PATTERN.match(text):
        return None
    value = float(text)
    return value if value != math.inf else None


TickEntry = tuple[int, str, str, int, str, int, float, float]
"""A checked tick entry: ts, price, size, trade_id, side, recv_ts, then price and size as floats."""
_TICK_LAYOUT = list(TICK_FIELDS)
_SIDES = frozenset(("buy", "sell"))


def _count_fast(text: str) -> int | None:
    """`id_or_time` without the regular expression (three times cheaper, the same answer)."""
    if text.isascii() and text.isdigit() and len(text) <= 19:
        value = int(text)
        if value <= INT64_MAX:
            return value
    return None


_AMOUNTS: dict[str, float] = {}
_AMOUNTS_SIZE = 100_000


def _amount_fast(text: str) -> float | None:
    """A price or size above zero, as `decimal_value` judges it; None otherwise. Memoized:
    prices and sizes repeat all day, and a dictionary hit is several times cheaper than the
    regular expression and the conversion. Emptied when it grows too big."""
    value = _AMOUNTS.get(text)
    if value is not None:
        return value
    value = decimal_value(text)
    if value is None or not value > 0:
        return None
    if len(_AMOUNTS) >= _AMOUNTS_SIZE:
        _AMOUNTS.clear()
    _AMOUNTS[text] = value
    return value


def tick_entry(flat: Sequence[str], symbol: str) -> TickEntry:
    """Check one entry of `ticks:<symbol>` given as Redis sends it (`[field, value, ...]`);
    `SchemaError` naming the fault. The one contract of a tick on a stream: every consumer
    (the writer, the analytics worker) accepts exactly the entries accepted here.

    The fast path reads the field order `Tick.to_fields()` writes; anything else (another
    order, extra fields, a bad value) goes through `check_tick`, which accepts the same
    entries and says why it refuses one.
    """
    if len(flat) == 14 and flat[0::2] == _TICK_LAYOUT:
        ts_text, sym, price, size, trade_text, side, recv_text = flat[1::2]
        if sym == symbol and side in _SIDES:
            ts, trade_id = _count_fast(ts_text), _count_fast(trade_text)
            recv_ts, p, q = _count_fast(recv_text), _amount_fast(price), _amount_fast(size)
            if (
                ts is not None and trade_id is not None and recv_ts is not None
                and p is not None and q is not None
            ):  # fmt: skip
                return ts, price, size, trade_id, side, recv_ts, p, q
    if len(flat) % 2:
        raise SchemaError(f"odd number of fields and values ({len(flat)})")
    return check_tick(dict(zip(flat[0::2], flat[1::2], strict=True)), symbol)


RangeEntry = tuple[TickEntry, int, TickSource]
"""A checked back-fill entry: the tick, the last trade id it covers, its source."""


def range_entry(flat: Sequence[str], symbol: str) -> RangeEntry:
    """Check one entry of `backfill:<symbol>` (`[field, value, ...]`): a tick by the tick
    contract, plus `last_trade_id` (at or above `trade_id`) and `source`; `SchemaError` naming
    the fault."""
    if len(flat) % 2:
        raise SchemaError(f"odd number of fields and values ({len(flat)})")
    fields = dict(zip(flat[0::2], flat[1::2], strict=True))
    tick = check_tick(fields, symbol)
    last_trade_id = _count(fields, "last_trade_id")
    if last_trade_id < tick[3]:
        raise SchemaError(f"field 'last_trade_id' {last_trade_id} is below trade_id {tick[3]}")
    source = _field(fields, "source")
    for known in TICK_SOURCES:
        if source == known:
            return tick, last_trade_id, known
    raise SchemaError(f"field 'source' is not one of {', '.join(TICK_SOURCES)}: {shown(source)}")


def _count(fields: Mapping[str, str], name: str) -> int:
    raw = _field(fields, name)
    value = id_or_time(raw)
    if value is None:
        raise SchemaError(f"field {name!r} is not an integer 0..2^63-1: {shown(raw)}")
    return value


def _amount(fields: Mapping[str, str], name: str) -> tuple[str, float]:
    raw = _field(fields, name)
    value = decimal_value(raw)
    if value is None:
        if DECIMAL_PATTERN.match(raw):
            raise SchemaError(f"field {name!r} is too large: {shown(raw)}")
        raise SchemaError(f"field {name!r} is not a plain decimal: {shown(raw)}")
    if not value > 0:
        raise SchemaError(f"field {name!r} is not above zero: {shown(raw)}")
    return raw, value


def check_tick(fields: Mapping[str, str], symbol: str | None = None) -> TickEntry:
    """`tick_entry` for an entry read as a mapping: every field checked, the first fault
    named. `symbol`, when given, is the symbol of the stream the entry was on."""
    side = _field(fields, "side")
    if side not in _SIDES:
        raise SchemaError(f"field 'side' is not buy or sell: {shown(side)}")
    found = _field(fields, "symbol")
    if not found:
        raise SchemaError("field 'symbol' is empty")
    if symbol is not None and found != symbol:
        raise SchemaError(f"field 'symbol' is {shown(found)} on the stream of {symbol}")
    ts = _count(fields, "ts")
    price, p = _amount(fields, "price")
    size, q = _amount(fields, "size")
    trade_id = _count(fields, "trade_id")
    recv_ts = _count(fields, "recv_ts")
    return ts, price, size, trade_id, side, recv_ts, p, q


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


@dataclass(frozen=True)
class FieldRule:
    """How one field of a record is read back from a stream entry."""

    name: str
    convert: Callable[[str], Any]
    kind: str
    """What the value must be, for errors."""
    required: bool
    default: Any
    dtype: Any
    """The numpy type of the field's column (`Record.table_of_fields`)."""


_CONVERTERS: dict[str, tuple[Callable[[str], Any], str, Any]] = {
    "int": (int, "an integer", np.int64),
    "float": (float, "a number", np.float64),
    "float | None": (float, "a number", np.float64),
    "str": (str, "text", object),
}


@cache
def _plan(cls: type) -> tuple[FieldRule, ...]:
    """Per record class, worked out once."""
    return tuple(
        FieldRule(
            field.name,
            *_CONVERTERS[str(field.type)][:2],
            required=field.default is MISSING,
            default=field.default,
            dtype=_CONVERTERS[str(field.type)][2],
        )
        for field in fields(cls)
    )


def _decode(cls: type[R], data: Mapping[str, str]) -> R:
    """Parse a record of plain `int`, `float`, `str` fields; those with defaults may be absent."""
    values: dict[str, Any] = {}
    for rule in _plan(cast(type, cls)):
        raw = data.get(rule.name)
        if raw is None:
            if rule.required:
                raise SchemaError(f"missing field {rule.name!r}")
            continue
        try:
            values[rule.name] = rule.convert(raw)
        except ValueError:
            raise SchemaError(f"field {rule.name!r} is not {rule.kind}: {raw!r}") from None
    return cls(**values)


def _column(rule: FieldRule, entries: Sequence[Mapping[str, str]]) -> np.ndarray:
    convert, name = rule.convert, rule.name
    if rule.required:
        values: Iterator[Any] = (convert(entry[name]) for entry in entries)
    else:
        absent = math.nan if rule.default is None else rule.default
        values = (convert(raw) if (raw := entry.get(name)) is not None else absent
                  for entry in entries)  # fmt: skip
    return np.fromiter(values, dtype=rule.dtype, count=len(entries))


def _table_of_fields(cls: type[R], entries: Sequence[Mapping[str, str]]) -> Table[R]:
    """`entries` parsed as `_decode` parses each (the same converters), column by column."""
    columns: dict[str, np.ndarray] = {}
    for rule in _plan(cast(type, cls)):
        try:
            columns[rule.name] = _column(rule, entries)
        except KeyError:
            raise SchemaError(f"missing field {rule.name!r}") from None
        except (ValueError, OverflowError):
            raise SchemaError(f"field {rule.name!r} is not {rule.kind} in every entry") from None
    return Table(cls, columns)


class Record:
    """A stream entry's record: `to_fields()` for XADD/HSET, `from_fields()` to read one back."""

    __slots__ = ()

    def to_fields(self) -> StreamFields:
        return _encode(self)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Self:
        return _decode(cls, fields)

    @classmethod
    def table_of_fields(cls, entries: Sequence[Mapping[str, str]]) -> Table[Self]:
        """Many entries at once, as columns: each read exactly as `from_fields` reads it, but
        without a record per entry. `SchemaError` when any entry would not parse (a field
        missing, a value that does not convert or, for an integer, does not fit 64 bits)."""
        return _table_of_fields(cls, entries)


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
    last_trade_id: int | None = None
    """A back-filled tick made of several trades covers trade ids `trade_id..last_trade_id`
    (one aggregate's missing trades, with their summed size); None: the one trade `trade_id`."""
    source: TickSource = "ws"

    @property
    def covers_through(self) -> int:
        """The last trade id this tick covers."""
        return self.trade_id if self.last_trade_id is None else self.last_trade_id

    def to_fields(self) -> StreamFields:
        """`TICK_FIELDS`, then `RANGE_FIELDS` for a tick that is not a plain WebSocket trade."""
        fields: StreamFields = {
            "ts": str(self.ts),
            "symbol": self.symbol,
            "price": self.price,
            "size": self.size,
            "trade_id": str(self.trade_id),
            "side": self.side,
            "recv_ts": str(self.recv_ts),
        }
        if self.last_trade_id is not None or self.source != "ws":
            fields["last_trade_id"] = str(self.covers_through)
            fields["source"] = self.source
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], symbol: str | None = None) -> Tick:
        """The tick of an entry, checked by `check_tick` (the contract); `symbol` is the
        stream's, when the entry must be of that symbol."""
        ts, price, size, trade_id, side, recv_ts, _, _ = check_tick(fields, symbol)
        tick = cls(
            ts, fields["symbol"], price, size, trade_id, "buy" if side == "buy" else "sell", recv_ts
        )
        if "last_trade_id" not in fields and "source" not in fields:
            return tick
        flat = [text for pair in fields.items() for text in pair]
        _, last_trade_id, source = range_entry(flat, tick.symbol)
        last = None if last_trade_id == trade_id else last_trade_id
        return replace(tick, last_trade_id=last, source=source)


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
class Forming(Record):
    """A view's bars in progress and its provisional z-score, as on
    `analytics:<A>-<B>:<tf>[...]:forming` every `DASH_FORMING_MS` while trades come.

    `start` is the interval in progress (the newest either leg traded in); each leg's bar so far
    (`a_*`, `b_*`: open, high, low, last price, volume, trades; a leg without a trade in it yet
    holds its previous close with volume 0). `ts` and `recv_ts` are the event and receive time
    of the newest trade in it. `zscore` is provisional: the spread at the last prices,
    `(a_close - beta * b_close - spread_mean) / spread_std`, with `beta` and the band of the last
    closed window (None before the view has one). Provisional values never fire alerts and
    never enter a stored series or an export.
    """

    start: int
    ts: int
    recv_ts: int
    a_open: float
    a_high: float
    a_low: float
    a_close: float
    a_volume: float
    a_trades: int
    b_open: float
    b_high: float
    b_low: float
    b_close: float
    b_volume: float
    b_trades: int
    beta: float | None = None
    zscore: float | None = None


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
    spread_mean: float
    spread_std: float
    window: int
    n: int
    method: str
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


def record_fields(record: type[Any]) -> tuple[str, ...]:
    """A record's field names, in order: the columns of its exports and tables."""
    return tuple(field.name for field in fields(record))


BAR_FIELDS = record_fields(Bar)
"""`start, open, high, low, close, volume, vwap, trades`: every bar table and export."""
PAIR_STAT_FIELDS = record_fields(PairStat)
PAIR_STAT_METRICS = tuple(
    field.name for field in fields(PairStat) if str(field.type) in ("float", "float | None")
)
"""The statistics an alert rule may test: the numeric fields of `PairStat`."""
