"""History queries on a real SQLite file equal pandas resampling of the same recorded ticks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.history import History
from shared.tickdb import (
    INSERT_TRADES,
    SCHEMA_VERSION,
    TickDbError,
    open_for_reading,
    open_for_writing,
)
from testkit.recorded import market_trades
from tests.writer_support import pandas_bars


def _load(path: Path) -> pd.DataFrame:
    """Store the recorded trades with ids in file order per symbol; return them as a frame."""
    rows, next_id = [], {"BTCUSDT": 1, "ETHUSDT": 1}
    for trade in market_trades():
        rows.append((trade.symbol, next_id[trade.symbol], trade.ts, trade.price, trade.size))
        next_id[trade.symbol] += 1
    conn = open_for_writing(path)
    conn.executemany(INSERT_TRADES, [(*row, "buy", 0) for row in rows])
    conn.close()
    frame = pd.DataFrame(rows, columns=["symbol", "trade_id", "ts", "price", "size"])
    return frame.astype({"price": float, "size": float})


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, pd.DataFrame]:
    path = tmp_path_factory.mktemp("history") / "ticks.db"
    return History(path), _load(path)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
@pytest.mark.parametrize(("tf", "rule"), [("1s", "1s"), ("1m", "1min"), ("5m", "5min")])
def test_bars_equal_pandas_resampling(
    stored: tuple[History, pd.DataFrame], symbol: str, tf: str, rule: str
) -> None:
    history, ticks = stored
    mine = ticks[ticks["symbol"] == symbol]
    expected = pandas_bars(mine, rule)
    bars = history.bars(symbol, tf, 0, 2**62)
    assert len(bars) == len(expected) > 0
    np.testing.assert_array_equal(bars["start"], expected["start"])
    np.testing.assert_array_equal(bars["trades"], expected["trades"])
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[column], expected[column], err_msg=column)
    np.testing.assert_allclose(bars["volume"], expected["volume"], rtol=1e-12)
    np.testing.assert_allclose(bars["vwap"], expected["vwap"], rtol=1e-12)


@pytest.mark.parametrize("tf", ["1s", "1m"])
def test_a_few_bar_fields_are_those_of_the_whole_bars(
    stored: tuple[History, pd.DataFrame], tf: str
) -> None:
    """What the chart reads (start, close, volume; vwap alone needs the volume too) of a range
    that starts and ends inside a second, so the ticks serve its edges."""
    history, ticks = stored
    start, end = int(ticks["ts"].min()) + 1_500, int(ticks["ts"].max()) - 2_250
    whole = history.bars("BTCUSDT", tf, start, end)
    for names in (["start", "close", "volume"], ["vwap", "start"]):
        columns = history.bar_columns("BTCUSDT", tf, start, end, names)
        assert set(names) <= set(columns)
        for name in names:
            np.testing.assert_array_equal(columns[name], whole[name].to_numpy(), err_msg=name)
            assert columns[name].flags.c_contiguous
    for wrong in (["close"], ["start", "price"]):
        with pytest.raises(ValueError, match="bar columns are start, open"):
            history.bar_columns("BTCUSDT", tf, start, end, wrong)


def test_ranges_are_half_open(stored: tuple[History, pd.DataFrame]) -> None:
    history, ticks = stored
    btc = ticks[ticks["symbol"] == "BTCUSDT"]
    start, end = int(btc["ts"].iloc[100]), int(btc["ts"].iloc[500])
    got = history.ticks("btcusdt", start, end)
    expected = btc[(btc["ts"] >= start) & (btc["ts"] < end)]
    assert list(got["trade_id"]) == list(expected["trade_id"])
    assert history.span("BTCUSDT") == (int(btc["ts"].min()), int(btc["ts"].max()))
    assert history.span("SOLUSDT") is None


def test_reader_never_creates_or_writes(tmp_path: Path) -> None:
    with pytest.raises(TickDbError, match="no tick database"):
        open_for_reading(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()
    open_for_writing(tmp_path / "t.db").close()
    reader = open_for_reading(tmp_path / "t.db")
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        reader.execute(INSERT_TRADES, ("X1", 1, 1, "1", "1", "buy", 1))


def test_migrations_are_idempotent_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    conn = open_for_writing(tmp_path / "t.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    conn = open_for_writing(tmp_path / "t.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(TickDbError, match="newer than this program"):
        open_for_writing(tmp_path / "t.db")
