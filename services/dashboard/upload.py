"""Uploaded OHLC CSV files: decoding, validation with row-and-column messages, pair alignment.

Accepted: one file with columns `time, symbol, open, high, low, close, volume` holding two symbols,
or one file per symbol (the `symbol` column may then be left out: the file name gives it, as in
`BTCUSDT.csv` or `ethusdt_1m.csv`). Column names are matched case-insensitively; `timestamp`,
`ts`, `date`, `datetime` and `open_time` are read as `time`. Times are ISO-8601 (UTC unless an
offset is given) or epoch seconds, milliseconds, microseconds or nanoseconds (the first row's size
tells which), from 1970 up to 2100. Rows may come in any order, blank lines anywhere.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd

from shared.config import normalize_symbol

REQUIRED = ("time", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
ALIASES = {
    "timestamp": "time",
    "ts": "time",
    "date": "time",
    "datetime": "time",
    "open_time": "time",
    "ticker": "symbol",
    "vol": "volume",
}
MIN_ALIGNED = 3
_SYMBOL_IN_NAME = re.compile(r"^([A-Za-z0-9]{2,30})")
_LINE = re.compile(r"line (\d+)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NOT_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
TIME_RANGE_MS = (0, 4_102_444_800_000)
"""Bar times accepted: from 1970-01-01 up to (not including) 2100-01-01 UTC."""
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class UploadError(ValueError):
    """An upload cannot be analysed; the message names the file, row and column at fault."""


@dataclass(frozen=True)
class UploadedFile:
    name: str
    data: bytes


@dataclass(frozen=True)
class Leg:
    """One symbol's bars from an upload, sorted by time."""

    symbol: str
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True)
class UploadedPair:
    """Two legs on their common bar times (A is the first symbol met in the files)."""

    files: tuple[str, ...]
    a: Leg
    b: Leg
    tf_ms: int
    dropped: int
    """Rows of either leg without a bar of the other leg at the same time."""

    @property
    def rows(self) -> int:
        return len(self.a.time)

    def to_bytes(self) -> bytes:
        """Compressed JSON of the pair, as kept in Redis under the upload's token."""
        body = {
            "files": list(self.files),
            "tf_ms": self.tf_ms,
            "dropped": self.dropped,
            "legs": [
                {
                    "symbol": leg.symbol,
                    **{name: getattr(leg, name).tolist() for name in REQUIRED},
                }
                for leg in (self.a, self.b)
            ],
        }
        return zlib.compress(orjson.dumps(body), 3)

    @classmethod
    def from_bytes(cls, blob: bytes) -> UploadedPair:
        body = orjson.loads(zlib.decompress(blob))
        legs = [
            Leg(
                symbol=leg["symbol"],
                time=np.asarray(leg["time"], dtype=np.int64),
                **{name: np.asarray(leg[name], dtype=float) for name in REQUIRED[1:]},
            )
            for leg in body["legs"]
        ]
        return cls(tuple(body["files"]), legs[0], legs[1], int(body["tf_ms"]), body["dropped"])


def size_message(name: str, size: int, max_bytes: int) -> str:
    return (
        f"{name} is {size / 1_048_576:.1f} MB; files over {max_bytes / 1_048_576:.0f} MB "
        "are refused (split it, or use a larger timeframe)"
    )


def decode_contents(name: str, contents: str, max_bytes: int) -> UploadedFile:
    """The bytes of a `dcc.Upload` data URL (`data:<type>;base64,<payload>`), size-checked."""
    header, sep, payload = contents.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise UploadError(f"{name}: the browser sent something other than a file")
    if len(payload) * 3 // 4 > max_bytes:
        raise UploadError(size_message(name, len(payload) * 3 // 4, max_bytes))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{name}: the file could not be decoded") from None
    if len(data) > max_bytes:
        raise UploadError(size_message(name, len(data), max_bytes))
    return UploadedFile(name, data)


@dataclass(frozen=True)
class _Table:
    """A file's rows as text, and the line each data row is on (None when that cannot be told,
    as with a quoted field spanning lines)."""

    name: str
    frame: pd.DataFrame
    lines: list[int] | None

    def where(self, index: int, column: str) -> str:
        """`a.csv row 12 (line 13), column 'close'`: rows count data rows, lines the file's."""
        line = f" (line {self.lines[index]})" if self.lines is not None else ""
        return f"{self.name} row {index + 1}{line}, column '{column}'"


def _row_lines(text: str, rows: int) -> list[int] | None:
    """The line of each data row: pandas skips blank (or all-space) lines, header included."""
    filled = [
        number for number, line in enumerate(_LINE_BREAK.split(text), start=1) if line.strip(" \t")
    ]
    return filled[1:] if len(filled) == rows + 1 else None


def _header(text: str, found: list[str]) -> list[str]:
    """The header's names as written (pandas renames a repeated `close` to `close.1`)."""
    first = next((line for line in _LINE_BREAK.split(text) if line.strip(" \t")), "")
    written = next(csv.reader([first], skipinitialspace=True), [])
    return written if len(written) == len(found) else found


def _read_table(file: UploadedFile) -> _Table:
    if not file.data.strip():
        raise UploadError(f"{file.name} is empty")
    try:
        text = file.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = file.data[: exc.start].count(b"\n") + 1
        raise UploadError(f"{file.name} line {line}: not UTF-8 text (is it a CSV file?)") from None
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.ParserError as exc:
        message = str(exc)
        fields = _FIELDS.search(message)
        if fields:
            raise UploadError(
                f"{file.name} line {fields.group(2)}: {fields.group(3)} fields where the header "
                f"has {fields.group(1)}"
            ) from None
        line_match = _LINE.search(message)
        where = f" line {line_match.group(1)}" if line_match else ""
        raise UploadError(f"{file.name}{where}: not a readable CSV ({message})") from None
    except pd.errors.EmptyDataError:
        raise UploadError(f"{file.name} is empty") from None
    header = _header(text, [str(c) for c in frame.columns])
    names = [ALIASES.get(c.strip().lower(), c.strip().lower()) for c in header]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise UploadError(f"{file.name}: column(s) {_columns(duplicated)} appear twice")
    frame.columns = pd.Index(names)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise UploadError(
            f"{file.name}: missing column(s) {', '.join(missing)}; "
            f"found {_columns(list(frame.columns)) or 'none'} (need time, open, high, low, close, "
            "volume, and symbol unless the file name gives it)"
        )
    if frame.empty:
        raise UploadError(f"{file.name} has a header but no rows")
    return _Table(file.name, frame, _row_lines(text, len(frame)))


def _columns(names: Sequence[str]) -> str:
    """Column names as a message lists them; a header cell left empty is `(unnamed)`."""
    return ", ".join(name or "(unnamed)" for name in names)


def _numbers(table: _Table, column: str) -> np.ndarray:
    raw = table.frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        index = int(np.argmax(bad))
        shown = raw.iloc[index]
        reason = "is empty" if shown == "" else f"{shown!r} is not a number"
        raise UploadError(f"{table.where(index, column)}: {reason}")
    return values


def _epoch_unit(first: float) -> tuple[str, float]:
    """The unit of epoch times, told by the first row's size: a time after 1973 has 11 digits
    or more in milliseconds, 14 in microseconds, 17 in nanoseconds."""
    magnitude = abs(first)
    if magnitude < 1e11:
        return "seconds", 1_000.0
    if magnitude < 1e14:
        return "milliseconds", 1.0
    if magnitude < 1e17:
        return "microseconds", 1e-3
    return "nanoseconds", 1e-6


def _times(table: _Table) -> np.ndarray:
    raw = table.frame["time"].str.strip()
    not_finite = raw.str.fullmatch(_NOT_FINITE).to_numpy(dtype=bool)
    if not_finite.any():
        index = int(np.argmax(not_finite))
        raise UploadError(f"{table.where(index, 'time')}: {raw.iloc[index]!r} is not a time")
    numeric = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    numbers = ~np.isnan(numeric)
    if numbers.any() and not numbers.all():
        odd = ~numbers if numbers[0] else numbers
        index = int(np.argmax(odd))
        raise UploadError(
            f"{table.where(index, 'time')}: {raw.iloc[index]!r} is not in the time format of "
            "the first row; use one format (ISO-8601 or epoch) throughout"
        )
    if numbers.all():
        unit, scale = _epoch_unit(float(numeric[0]))
        millis = np.round(numeric * scale)
        _check_range(table, raw, millis, f" (read as epoch {unit}, like the first row)")
        return millis.astype(np.int64)
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        index = int(np.argmax(bad))
        raise UploadError(
            f"{table.where(index, 'time')}: {raw.iloc[index]!r} is not a time (ISO-8601 like "
            "2025-12-16T13:41:00Z, or epoch seconds, milliseconds, microseconds or nanoseconds)"
        )
    times = parsed.dt.as_unit("ms").astype("int64").to_numpy().astype(np.int64)
    _check_range(table, raw, times, "")
    return times


def _check_range(table: _Table, raw: pd.Series, millis: np.ndarray, how: str) -> None:
    """Refuse a time outside `TIME_RANGE_MS` (a misread unit, a typo), naming its row."""
    bad = ~((millis >= TIME_RANGE_MS[0]) & (millis < TIME_RANGE_MS[1]))
    if bad.any():
        index = int(np.argmax(bad))
        raise UploadError(
            f"{table.where(index, 'time')}: {raw.iloc[index]!r} is not between "
            f"1970-01-01 and 2100-01-01{how}"
        )


def _check_bars(table: _Table, values: dict[str, np.ndarray]) -> None:
    for column in PRICES:
        bad = values[column] <= 0
        if bad.any():
            index = int(np.argmax(bad))
            raise UploadError(
                f"{table.where(index, column)}: {values[column][index]:g} is not a positive price"
            )
    bad = values["volume"] < 0
    if bad.any():
        index = int(np.argmax(bad))
        raise UploadError(f"{table.where(index, 'volume')}: {values['volume'][index]:g} is below 0")
    checks = (
        ("high", values["high"] < values["low"], "is below the low"),
        (
            "high",
            values["high"] < np.maximum(values["open"], values["close"]),
            "is below the open or close",
        ),
        (
            "low",
            values["low"] > np.minimum(values["open"], values["close"]),
            "is above the open or close",
        ),
    )
    for column, bad, reason in checks:
        if bad.any():
            index = int(np.argmax(bad))
            raise UploadError(f"{table.where(index, column)}: {values[column][index]:g} {reason}")


def _symbols_of(table: _Table) -> np.ndarray:
    frame, name = table.frame, table.name
    if "symbol" in frame.columns:
        raw = frame["symbol"].str.strip()
        normalized = {}
        for value in raw.unique():
            try:
                normalized[value] = normalize_symbol(value)
            except ValueError as exc:
                index = int(np.argmax((raw == value).to_numpy()))
                raise UploadError(f"{table.where(index, 'symbol')}: {exc}") from None
        return raw.map(normalized).to_numpy(dtype=object)
    match = _SYMBOL_IN_NAME.match(name.rsplit("/", 1)[-1])
    try:
        symbol = normalize_symbol(match.group(1)) if match else ""
    except ValueError:
        symbol = ""
    if not symbol:
        raise UploadError(
            f"{name}: no 'symbol' column, and the file name does not start with a symbol "
            "(name it like BTCUSDT.csv, or add a symbol column)"
        )
    return np.full(len(frame), symbol, dtype=object)


def parse_file(file: UploadedFile) -> dict[str, Leg]:
    """Each symbol's validated bars from one CSV file; `UploadError` naming row and column."""
    table = _read_table(file)
    values = {column: _numbers(table, column) for column in REQUIRED[1:]}
    _check_bars(table, values)
    times = _times(table)
    symbols = _symbols_of(table)
    legs: dict[str, Leg] = {}
    for symbol in dict.fromkeys(symbols.tolist()):
        rows = np.flatnonzero(symbols == symbol)
        order = rows[np.argsort(times[rows], kind="stable")]
        sorted_times = times[order]
        repeated = np.flatnonzero(np.diff(sorted_times) == 0)
        if repeated.size:
            first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
            raise UploadError(
                f"{table.where(second, 'time')}: {symbol} already has a bar at this time "
                f"(row {first + 1})"
            )
        legs[symbol] = Leg(
            symbol, sorted_times, *(values[column][order] for column in REQUIRED[1:])
        )
    return legs


def _bar_length(times: np.ndarray) -> int:
    steps = np.diff(times)
    steps = steps[steps > 0]
    return int(np.median(steps)) if steps.size else 0


def pair_from_files(files: Sequence[UploadedFile]) -> UploadedPair:
    """Parse every file and align the two symbols they hold on their common bar times."""
    if not files:
        raise UploadError("no file was uploaded")
    legs: dict[str, Leg] = {}
    origins: dict[str, str] = {}
    for file in files:
        for symbol, leg in parse_file(file).items():
            if symbol in legs:
                raise UploadError(f"{file.name}: {symbol} is also in another uploaded file")
            legs[symbol] = leg
            if b"symbol" not in file.data.split(b"\n", 1)[0].lower():
                origins[symbol] = f" from the file name {file.name}"
    if len(legs) != 2:
        found = ", ".join(f"{symbol}{origins.get(symbol, '')}" for symbol in legs) or "none"
        raise UploadError(f"a pair needs exactly two symbols; the upload has {len(legs)} ({found})")
    a, b = legs.values()
    common, in_a, in_b = np.intersect1d(a.time, b.time, assume_unique=True, return_indices=True)
    if len(common) < MIN_ALIGNED:
        raise UploadError(
            f"{a.symbol} and {b.symbol} have only {len(common)} bar time(s) in common; "
            "their bars must share the same times (same timeframe, same clock)"
        )

    def take(leg: Leg, index: np.ndarray) -> Leg:
        return Leg(leg.symbol, *(getattr(leg, c)[index] for c in REQUIRED))

    dropped = len(a.time) + len(b.time) - 2 * len(common)
    names = tuple(file.name for file in files)
    return UploadedPair(names, take(a, in_a), take(b, in_b), _bar_length(common), dropped)
