"""The three replay file formats, told apart by their first line (`.gz` accepted for all), and
each line as a `TickRow` (or a `NonMarketPrint`):
- raw frames, one per line, as `--record FILE` writes them (`{"e":"trade",...}` or the
  `{"stream":..,"data":..}` envelope): they keep their trade ids;
- the collector NDJSON of `sample_data/` (`{"symbol","ts","price","size"}`), which has no trade
  id, maker flag or execution type. Rows with price 0 are `NA` prints. Trade ids are assigned
  per symbol, in file order, from `1000 * (epoch ms of the file's first row)`, so a second
  replay gives the same ids. The aggressor side is inferred by the tick rule (an uptick is a
  buy, a downtick a sell, an unchanged price keeps the previous side);
- Binance's public trades CSV (`id,price,qty,quote_qty,time,is_buyer_maker`, header optional,
  time in ms or µs), the symbol taken from the file name (`BTCUSDT-trades-2025-12-16.csv`).
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from services.ingestor.binance import (
    FrameError,
    NonMarketPrint,
    TickRow,
    normalize_trade,
    parse_frame,
)

Format = Literal["frames", "collector", "csv"]
Normalize = Callable[[bytes, int], TickRow | NonMarketPrint]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CSV_NAME = re.compile(r"^([A-Za-z0-9]{2,30})-(agg)?trades-", re.IGNORECASE)
MICROSECONDS_ABOVE = 10**14
"""Trade times above this are microseconds (Binance's newer CSV files), not milliseconds."""


class ReplayError(ValueError):
    """The replay file cannot be read as any of the formats; the message says why."""


class ReplayFile:
    """Lines of a file (gzip when it ends in `.gz`), with how far through it the reading is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = max(1, path.stat().st_size)
        self._raw: BinaryIO = path.open("rb")
        self._lines: BinaryIO = self._raw
        if path.suffix == ".gz":
            self._lines = gzip.GzipFile(fileobj=self._raw)  # type: ignore[assignment]

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            line = line.strip()
            if line:
                yield line

    @property
    def fraction(self) -> float:
        """Share of the file (compressed bytes for gzip) read so far."""
        return min(1.0, self._raw.tell() / self.size)

    def close(self) -> None:
        self._lines.close()
        self._raw.close()


def detect_format(path: Path) -> Format:
    """The format of a replay file, from its first line; `ReplayError` when it is none."""
    try:
        replay = ReplayFile(path)
        try:
            first = next(iter(replay), b"")
        finally:
            replay.close()
    except (OSError, EOFError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None
    if not first:
        raise ReplayError(f"{path} is empty")
    if first.startswith(b"{"):
        try:
            row = orjson.loads(first)
        except orjson.JSONDecodeError:
            return "frames"
        if isinstance(row, dict) and {"symbol", "ts", "price", "size"} <= row.keys():
            return "collector"
        return "frames"
    if b"," in first:
        if not CSV_NAME.match(path.name):
            raise ReplayError(
                f"{path.name}: a trades CSV must be named like BTCUSDT-trades-2025-12-16.csv "
                "(the symbol comes from the name)"
            )
        return "csv"
    raise ReplayError(f"{path}: not raw frames, collector NDJSON or a trades CSV")


def decimal_text(number: Any) -> str:
    """A JSON number as plain decimal text: the shortest text that reads back as it."""
    if type(number) is int:
        return str(number)
    if type(number) is not float:
        raise FrameError(f"not a number: {number!r}")
    return format(Decimal(repr(number)), "f")


def parse_iso_ms(text: Any) -> int:
    """`2025-12-16T13:41:38.698Z` as epoch milliseconds (rounded to the nearest)."""
    if type(text) is not str:
        raise FrameError(f"not a time: {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FrameError(f"not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round((moment - EPOCH) / timedelta(milliseconds=1))


@dataclass
class CollectorRows:
    """Collector rows as Binance trade events, with deterministic ids and tick-rule sides."""

    base_id: int | None = None
    next_id: dict[str, int] = field(default_factory=dict)
    last: dict[str, tuple[Decimal, bool]] = field(default_factory=dict)
    _time: tuple[str, int] = ("", 0)
    _decimals: dict[float | int, str] = field(default_factory=dict)

    def __call__(self, line: bytes, recv_ts: int) -> TickRow | NonMarketPrint:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FrameError(f"not JSON: {exc}") from None
        if type(row) is not dict:
            raise FrameError("not a JSON object")
        try:
            symbol, ts = row["symbol"], self._ms(row["ts"])
            price, size = self._decimal(row["price"]), self._decimal(row["size"])
        except KeyError as exc:
            raise FrameError(f"collector row without field {exc.args[0]!r}") from None
        if type(symbol) is not str:
            raise FrameError(f"field 'symbol' is not a string: {symbol!r}")
        if self.base_id is None:
            self.base_id = ts * 1000
        next_id = self.next_id.get(symbol, self.base_id)
        market = Decimal(price) > 0 and Decimal(size) > 0
        if market:
            self.next_id[symbol] = next_id + 1
            trade_id = next_id
            maker = self._buyer_is_maker(symbol, Decimal(price))
        else:
            # An NA print is no trade: it takes the id before the next trade's, so the
            # sequence neither moves nor jumps.
            trade_id, maker = next_id - 1, False
        event = {
            "e": "trade", "T": ts, "s": symbol, "t": trade_id, "p": price, "q": size,
            "X": "MARKET" if market else "NA", "m": maker,
        }  # fmt: skip
        return normalize_trade(event, recv_ts)

    def _ms(self, text: Any) -> int:
        # Many trades share a millisecond: the previous row's time is often this one's.
        if text != self._time[0]:
            self._time = (text, parse_iso_ms(text))
        return self._time[1]

    def _decimal(self, number: Any) -> str:
        if type(number) is not float and type(number) is not int:
            raise FrameError(f"not a number: {number!r}")
        known = self._decimals.get(number)
        if known is None:
            known = decimal_text(number)
            if len(self._decimals) < 100_000:
                self._decimals[number] = known
        return known

    def _buyer_is_maker(self, symbol: str, price: Decimal) -> bool:
        previous = self.last.get(symbol)
        if previous is None or price == previous[0]:
            sell = previous[1] if previous is not None else False
        else:
            sell = price < previous[0]
        self.last[symbol] = (price, sell)
        return sell


@dataclass
class CsvRows:
    """Rows of Binance's public trades CSV as trade events."""

    symbol: str

    def __call__(self, line: bytes, recv_ts: int) -> TickRow | NonMarketPrint:
        text = line.decode("utf-8", "replace")
        cells = next(csv.reader([text]))
        if cells and cells[0] == "id":
            raise HeaderLine
        if len(cells) != 6:
            raise FrameError(f"expected 6 columns, not {len(cells)}: {text!r}")
        trade_id, price, size, _, moment, maker = cells
        try:
            ts = int(moment)
            event = {
                "e": "trade", "T": ts // 1000 if ts > MICROSECONDS_ABOVE else ts,
                "s": self.symbol, "t": int(trade_id), "p": price, "q": size, "X": "MARKET",
                "m": {"true": True, "false": False}[maker.strip().lower()],
            }  # fmt: skip
        except (ValueError, KeyError, InvalidOperation):
            raise FrameError(f"malformed trades CSV row: {text!r}") from None
        return normalize_trade(event, recv_ts)


class HeaderLine(Exception):
    """The CSV header line: skipped."""


def frames(line: bytes, recv_ts: int) -> TickRow | NonMarketPrint:
    return parse_frame(line, recv_ts)


def normalizer(path: Path, kind: Format) -> Normalize:
    """A fresh line normalizer for one pass over `path` (ids start again each pass)."""
    if kind == "collector":
        return CollectorRows()
    if kind == "csv":
        match = CSV_NAME.match(path.name)
        assert match is not None
        return CsvRows(match.group(1).upper())
    return frames
