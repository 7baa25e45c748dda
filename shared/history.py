"""Read-only history queries on the tick database: ticks and bars of any timeframe.

Used by the dashboard (history, export) and by the analytics worker (state rebuilt at start).
Times are epoch milliseconds, ranges half-open `[start_ms, end_ms)`. Bars are computed from the
ticks: a tick at `ts` belongs to the bar starting at `floor(ts / tf) * tf`; open and close are the
prices of the lowest and highest trade id in the bar (SQLite gives a bare column the value of the
row that a lone `min()`/`max()` picked); only intervals with trades are returned.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from shared.config import normalize_symbol, timeframe_ms
from shared.tickdb import open_for_reading

TICK_COLUMNS = ["ts", "trade_id", "price", "size", "side"]
BAR_COLUMNS = ["start", "open", "high", "low", "close", "volume", "vwap", "trades"]

_TICKS_SQL = """
SELECT ts, trade_id, CAST(price AS REAL), CAST(size AS REAL), side
FROM ticks WHERE symbol = :symbol AND ts >= :start AND ts < :end
ORDER BY trade_id
"""

_BARS_SQL = """
WITH t AS (
    SELECT (ts / :tf) * :tf AS start, trade_id, CAST(price AS REAL) AS p, CAST(size AS REAL) AS q
    FROM ticks WHERE symbol = :symbol AND ts >= :start AND ts < :end
),
first AS (SELECT start, min(trade_id), p AS open FROM t GROUP BY start),
last AS (SELECT start, max(trade_id), p AS close FROM t GROUP BY start),
agg AS (
    SELECT start, max(p) AS high, min(p) AS low, sum(q) AS volume,
           sum(p * q) / sum(q) AS vwap, count(*) AS trades
    FROM t GROUP BY start
)
SELECT agg.start, open, high, low, close, volume, vwap, trades
FROM agg JOIN first USING (start) JOIN last USING (start)
ORDER BY agg.start
"""


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

    def bars(self, symbol: str, tf: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        """OHLCV, VWAP and trade count of `symbol` at timeframe `tf` (`1s` ... `1d`)."""
        params = {
            "symbol": normalize_symbol(symbol),
            "tf": timeframe_ms(tf),
            "start": start_ms,
            "end": end_ms,
        }
        rows = self.conn.execute(_BARS_SQL, params).fetchall()
        return pd.DataFrame(rows, columns=BAR_COLUMNS)

    def span(self, symbol: str) -> tuple[int, int] | None:
        """First and last trade time stored for `symbol`, or None when it has none."""
        row = self.conn.execute(
            "SELECT min(ts), max(ts) FROM ticks WHERE symbol = ?", (normalize_symbol(symbol),)
        ).fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))
