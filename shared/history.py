"""Read-only history queries on the tick database: ticks and bars of any timeframe.

Used by the dashboard (history, export) and by the analytics worker (state rebuilt at start).
Times are epoch milliseconds, ranges half-open `[start_ms, end_ms)`. Bars are computed from the
ticks: a tick at `ts` belongs to the bar starting at `floor(ts / tf) * tf`; open and close are the
prices of the lowest and highest trade id in the bar (SQLite gives a bare column the value of the
row that a lone `min()`/`max()` picked); only intervals with trades are returned.

Bars are aggregated from the one-second bars `bars_1s` that triggers keep equal to the ticks
(`shared.tickdb`), so a day of 1s bars reads 86,400 rows, not millions of ticks; the parts of a
range that do not cover whole seconds are aggregated from the ticks themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shared.config import normalize_symbol, timeframe_ms
from shared.schemas import BAR_FIELDS
from shared.tickdb import open_for_reading, seconds_of

TICK_COLUMNS = ["ts", "trade_id", "price", "size", "side"]
BAR_COLUMNS = list(BAR_FIELDS)
EXPORT_TICK_COLUMNS = [
    "ts", "trade_id", "price", "size", "side", "recv_ts", "last_trade_id", "source",
]  # fmt: skip
"""Columns of `tick_rows`: prices and sizes as the exchange's exact decimal text; a row covers
trade ids `trade_id..last_trade_id` and says where it came from (`ws`, `rest`, `rest-agg`)."""

_RANGE = "symbol = :symbol AND ts >= :start AND ts < :end"

_TICKS_SQL = f"""
SELECT ts, trade_id, CAST(price AS REAL), CAST(size AS REAL), side
FROM ticks INDEXED BY ticks_symbol_ts WHERE {_RANGE}
ORDER BY trade_id
"""

_TICK_ROWS_SQL = f"""
SELECT ts, trade_id, price, size, side, recv_ts, last_trade_id, source
FROM ticks INDEXED BY ticks_symbol_ts WHERE {_RANGE}
ORDER BY ts, trade_id
"""

_COVERAGE_SQL = """
SELECT trade_id, last_trade_id, previous FROM (
    SELECT trade_id, last_trade_id,
           lag(last_trade_id) OVER (ORDER BY trade_id) AS previous
    FROM ticks WHERE symbol = ?
) WHERE trade_id != previous + 1
"""
"""Every row that does not follow the previous one's last id: a hole before it, or an overlap."""

_SECONDS_COLUMNS = "start, open_id, open, high, low, close_id, close, volume, notional, trades"

_SECONDS_SQL = f"""
SELECT {_SECONDS_COLUMNS}
FROM bars_1s WHERE symbol = :symbol AND start >= :inner_start AND start < :inner_end
UNION ALL
SELECT {_SECONDS_COLUMNS}
FROM ({seconds_of("t.symbol = :symbol AND t.ts >= :start AND t.ts < :inner_start")})
UNION ALL
SELECT {_SECONDS_COLUMNS}
FROM ({seconds_of("t.symbol = :symbol AND t.ts >= :inner_end AND t.ts < :end")})
"""

_BARS_SQL = f"""
WITH agg AS (
    SELECT start / :tf * :tf AS bucket, min(open_id) AS oid, max(close_id) AS cid,
           max(high) AS high, min(low) AS low, sum(volume) AS volume,
           sum(notional) AS notional, sum(trades) AS trades
    FROM ({_SECONDS_SQL}) GROUP BY bucket
)
SELECT bucket AS start, CAST(o.price AS REAL) AS open, high, low, CAST(c.price AS REAL) AS close,
       volume, notional, trades
FROM agg
JOIN ticks AS o ON o.symbol = :symbol AND o.trade_id = agg.oid
JOIN ticks AS c ON c.symbol = :symbol AND c.trade_id = agg.cid
ORDER BY bucket
"""

_ONE_SECOND_SQL = f"""
SELECT start, open, high, low, close, volume, notional, trades FROM ({_SECONDS_SQL})
"""

_STORED = {"vwap": "notional"}
"""The bar fields stored as another quantity: `vwap` is `notional / volume`."""


@dataclass(frozen=True)
class Summary:
    """What the database holds for one symbol."""

    symbol: str
    rows: int
    first_ts: int
    last_ts: int
    first_trade_id: int
    last_trade_id: int
    """The last trade id covered (a back-filled row may cover several)."""
    trade_ids: int = 0
    """Trade ids the rows cover."""
    rows_by_source: Mapping[str, int] = field(default_factory=dict)

    @property
    def missing_trade_ids(self) -> int:
        """Trade ids between the first and last stored that no row covers (Binance numbers
        trades of a symbol consecutively, so these are trades never received, or prints that
        are not market trades)."""
        return self.last_trade_id - self.first_trade_id + 1 - self.trade_ids


@dataclass(frozen=True)
class TimeGap:
    """A quiet stretch: no trade stored strictly between `after_ts` and `before_ts`."""

    after_ts: int
    before_ts: int
    missing_ids: int = 0
    """Trade ids between the rows on both sides that no row covers: 0 for a market that was
    quiet, more when trades were missed."""

    @property
    def length_ms(self) -> int:
        return self.before_ts - self.after_ts


@dataclass(frozen=True)
class Coverage:
    """How the rows of one symbol cover its trade ids."""

    holes: list[tuple[int, int]]
    """Id runs `first..last` no row covers, between the first and last row, in order."""
    overlaps: int
    """Rows that cover an id a row before them covers too (none, normally)."""

    @property
    def missing_ids(self) -> int:
        return sum(last - first + 1 for first, last in self.holes)


def _whole_seconds(start_ms: int, end_ms: int) -> tuple[int, int]:
    """The whole seconds inside `[start_ms, end_ms)`, served by `bars_1s`; ticks serve the rest."""
    inner_start = -(-start_ms // 1000) * 1000
    inner_end = end_ms // 1000 * 1000
    if inner_start >= inner_end:
        return end_ms, end_ms
    return inner_start, inner_end


def _range(symbol: str, start_ms: int, end_ms: int) -> dict[str, str | int]:
    """Query parameters of a range: its whole seconds come from `bars_1s`, the rest from ticks."""
    inner_start, inner_end = _whole_seconds(start_ms, end_ms)
    return {
        "symbol": normalize_symbol(symbol),
        "start": start_ms,
        "end": end_ms,
        "inner_start": inner_start,
        "inner_end": inner_end,
    }


def _bar_columns(cursor: sqlite3.Cursor, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Rows of the columns `names` (as the query selected them) as one array per bar field."""
    dtype = np.dtype([(name, "i8" if name in ("start", "trades") else "f8") for name in names])
    records = np.fromiter(cursor, dtype=dtype)
    columns = {name: np.ascontiguousarray(records[name]) for name in names}
    if "vwap" in columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            columns["vwap"] = columns["vwap"] / columns["volume"]
    return columns


class History:
    """Queries over one tick database, opened read-only on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_for_reading(self.path)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def ticks(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        """Trades of `symbol` in `[start_ms, end_ms)` in trade-id order; prices as floats."""
        params = {"symbol": normalize_symbol(symbol), "start": start_ms, "end": end_ms}
        rows = self.conn.execute(_TICKS_SQL, params).fetchall()
        return pd.DataFrame(rows, columns=TICK_COLUMNS)

    def bar_columns(
        self, symbol: str, tf: str, start_ms: int, end_ms: int, names: Sequence[str] = BAR_COLUMNS
    ) -> dict[str, np.ndarray]:
        """The bar fields `names` (`BAR_COLUMNS`, `start` among them) of `symbol` at timeframe
        `tf` (`1s` ... `1d`), in time order, one array each: reading only what is needed costs
        a day of 1s bars a third of the time."""
        unknown = [name for name in names if name not in BAR_COLUMNS]
        if unknown or "start" not in names:
            raise ValueError(f"bar columns are {', '.join(BAR_COLUMNS)} with start, not {names}")
        tf_ms = timeframe_ms(tf)
        params = {**_range(symbol, start_ms, end_ms), "tf": tf_ms}
        if "vwap" in names and "volume" not in names:
            names = [*names, "volume"]
        selected = ", ".join(_STORED.get(name, name) for name in names)
        query = _ONE_SECOND_SQL if tf_ms == 1000 else _BARS_SQL
        columns = _bar_columns(
            self.conn.execute(f"SELECT {selected} FROM ({query})", params), names
        )
        starts = columns["start"]
        if len(starts) > 1 and not bool(np.all(starts[1:] > starts[:-1])):
            order = np.argsort(starts, kind="stable")
            columns = {name: values[order] for name, values in columns.items()}
        return columns

    def bars(self, symbol: str, tf: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        """OHLCV, VWAP and trade count of `symbol` at timeframe `tf` (`1s` ... `1d`)."""
        return pd.DataFrame(self.bar_columns(symbol, tf, start_ms, end_ms))

    def span(self, symbol: str) -> tuple[int, int] | None:
        """First and last trade time stored for `symbol`, or None when it has none."""
        row = self.conn.execute(
            "SELECT min(ts), max(ts) FROM ticks WHERE symbol = ?", (normalize_symbol(symbol),)
        ).fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def symbols(self) -> list[str]:
        """The symbols that have ticks stored, sorted."""
        found: list[str] = []
        query = "SELECT min(symbol) FROM bars_1s WHERE symbol > ?"
        while (row := self.conn.execute(query, (found[-1] if found else "",)).fetchone())[0]:
            found.append(str(row[0]))
        return found

    def tick_count(self, symbol: str, start_ms: int, end_ms: int) -> int:
        """Number of ticks of `symbol` in `[start_ms, end_ms)`, from the one-second bars."""
        row = self.conn.execute(
            f"SELECT coalesce(sum(trades), 0) FROM ({_SECONDS_SQL})",
            _range(symbol, start_ms, end_ms),
        ).fetchone()
        return int(row[0])

    def tick_rows(
        self, symbol: str, start_ms: int, end_ms: int, *, chunk: int = 20_000
    ) -> Iterator[list[tuple[int, int, str, str, str, int]]]:
        """Ticks of `symbol` in `[start_ms, end_ms)` in time order, in chunks, with prices and
        sizes as stored (exact decimal text); columns `EXPORT_TICK_COLUMNS`."""
        params = {"symbol": normalize_symbol(symbol), "start": start_ms, "end": end_ms}
        cursor = self.conn.execute(_TICK_ROWS_SQL, params)
        while rows := cursor.fetchmany(chunk):
            yield rows

    def summary(self, symbol: str) -> Summary | None:
        """Row count, time span and trade-id range of `symbol`, or None when it has none."""
        symbol = normalize_symbol(symbol)
        by_source = self.conn.execute(
            "SELECT source, count(*), sum(last_trade_id - trade_id + 1), min(trade_id),"
            " max(last_trade_id) FROM ticks WHERE symbol = ? GROUP BY source",
            (symbol,),
        ).fetchall()
        span = self.span(symbol)
        if not by_source or span is None:
            return None
        return Summary(
            symbol,
            rows=sum(int(r[1]) for r in by_source),
            first_ts=span[0],
            last_ts=span[1],
            first_trade_id=min(int(r[3]) for r in by_source),
            last_trade_id=max(int(r[4]) for r in by_source),
            trade_ids=sum(int(r[2]) for r in by_source),
            rows_by_source={str(r[0]): int(r[1]) for r in by_source},
        )

    def coverage(self, symbol: str) -> Coverage:
        """The trade ids of `symbol` that no row covers, and rows that cover an id twice (one
        pass over the symbol's rows in id order)."""
        holes, overlaps = [], 0
        for trade_id, _, previous in self.conn.execute(_COVERAGE_SQL, (normalize_symbol(symbol),)):
            if previous is None:
                continue
            if trade_id > previous + 1:
                holes.append((int(previous) + 1, int(trade_id) - 1))
            else:
                overlaps += 1
        return Coverage(holes, overlaps)

    def gaps(self, symbol: str, min_gap_ms: int) -> list[TimeGap]:
        """Stretches longer than `min_gap_ms` without a single trade of `symbol`, oldest first,
        each with the trade ids missing across it (0 when the market was merely quiet).

        Candidates come from consecutive one-second bars; each is then measured on the ticks.
        """
        symbol = normalize_symbol(symbol)
        candidates = self.conn.execute(
            """
            SELECT previous, start FROM (
                SELECT start, lag(start) OVER (ORDER BY start) AS previous
                FROM bars_1s WHERE symbol = :symbol
            ) WHERE start - previous > :gap - 1000
            """,
            {"symbol": symbol, "gap": min_gap_ms},
        ).fetchall()
        found = []
        for previous, start in candidates:
            after, after_id = self.conn.execute(
                "SELECT max(ts), max(last_trade_id) FROM ticks"
                " WHERE symbol = ? AND ts >= ? AND ts < ?",
                (symbol, previous, previous + 1000),
            ).fetchone()
            before, before_id = self.conn.execute(
                "SELECT min(ts), min(trade_id) FROM ticks WHERE symbol = ? AND ts >= ? AND ts < ?",
                (symbol, start, start + 1000),
            ).fetchone()
            if before - after > min_gap_ms:
                missing = max(0, int(before_id) - int(after_id) - 1)
                found.append(TimeGap(int(after), int(before), missing))
        return found
