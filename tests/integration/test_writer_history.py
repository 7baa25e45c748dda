"""The one-second bars the triggers keep: equal to the ticks after inserts, replays, deletes and
a migration of an older database; history ranges that cut seconds; the `stats` queries."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.writer.store import TickStore
from shared.history import BAR_COLUMNS, History, TimeGap
from shared.tickdb import MIGRATIONS, SCHEMA_VERSION, open_for_writing, seconds_of
from testkit.recorded import recorded_ticks
from tests.writer_support import Published, pandas_bars

SECONDS = f"SELECT * FROM ({seconds_of('1')}) ORDER BY symbol, start"


def _rows(ticks: list) -> list:  # type: ignore[type-arg]
    return [(t.symbol, t.trade_id, t.ts, t.price, t.size, t.side, t.recv_ts) for t in ticks]


def _assert_bars_1s_match_ticks(conn: sqlite3.Connection) -> None:
    kept = conn.execute("SELECT * FROM bars_1s ORDER BY symbol, start").fetchall()
    fresh = conn.execute(SECONDS).fetchall()
    assert len(kept) == len(fresh) > 0
    for mine, truth in zip(kept, fresh, strict=True):
        assert mine[:8] == truth[:8] and mine[10] == truth[10]
        assert mine[8] == pytest.approx(truth[8], rel=1e-12)
        assert mine[9] == pytest.approx(truth[9], rel=1e-12)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    ticks = recorded_ticks(30_000)
    path = tmp_path_factory.mktemp("bars") / "ticks.db"
    store = TickStore.open(path, busy_timeout_ms=1_000)
    rows = _rows(ticks)
    for start in range(0, len(rows), 3_000):
        assert store.write(rows[start : start + 3_000]) == len(rows[start : start + 3_000])
    assert store.write(rows[5_000:9_000]) == 0
    store.close()
    frame = Published(ticks, 0).unique().astype({"price": float, "size": float})
    return path, frame


def test_triggers_keep_bars_1s_equal_to_the_ticks_despite_replays(
    stored: tuple[Path, pd.DataFrame],
) -> None:
    conn = sqlite3.connect(stored[0])
    _assert_bars_1s_match_ticks(conn)
    assert conn.execute("SELECT sum(trades) FROM bars_1s").fetchone()[0] == len(stored[1])
    conn.close()


@pytest.mark.parametrize(("tf", "rule"), [("1s", "1s"), ("5s", "5s"), ("1m", "1min"), ("1h", "1h")])
def test_ranges_cutting_seconds_equal_pandas(
    stored: tuple[Path, pd.DataFrame], tf: str, rule: str
) -> None:
    path, ticks = stored
    history = History(path)
    btc = ticks[ticks["symbol"] == "BTCUSDT"]
    start, end = int(btc["ts"].iloc[1_000]) + 1, int(btc["ts"].iloc[9_000]) - 1
    assert start % 1000 and end % 1000
    window = btc[(btc["ts"] >= start) & (btc["ts"] < end)]
    expected = pandas_bars(window, rule)
    bars = history.bars("BTCUSDT", tf, start, end)
    assert list(bars.columns) == BAR_COLUMNS
    for column in ("start", "trades", "open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[column], expected[column], err_msg=column)
    np.testing.assert_allclose(bars["volume"], expected["volume"], rtol=1e-12)
    np.testing.assert_allclose(bars["vwap"], expected["vwap"], rtol=1e-12)
    assert history.tick_count("BTCUSDT", start, end) == len(window)
    inside = history.bars("BTCUSDT", tf, start, start + 1)
    assert len(inside) == int(((btc["ts"] >= start) & (btc["ts"] < start + 1)).any())
    history.close()


def test_deleting_ticks_recomputes_their_seconds_and_updates_are_refused(tmp_path: Path) -> None:
    ticks = recorded_ticks(5_000)
    store = TickStore.open(tmp_path / "t.db", busy_timeout_ms=1_000)
    store.write(_rows(ticks))
    conn = store.conn
    conn.execute("DELETE FROM ticks WHERE trade_id % 7 = 0 OR ts % 5 = 0")
    _assert_bars_1s_match_ticks(conn)
    with pytest.raises(sqlite3.IntegrityError, match="ticks are immutable"):
        conn.execute("UPDATE ticks SET price = '1' WHERE trade_id = ?", (ticks[1].trade_id,))
    store.close()


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_database_is_migrated_and_its_bars_filled(tmp_path: Path, version: int) -> None:
    path = tmp_path / f"v{version}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        conn.executescript(f"BEGIN;{script}PRAGMA user_version = {number};COMMIT;")
    rows = _rows(recorded_ticks(4_000))
    conn.executemany("INSERT INTO ticks VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    conn = open_for_writing(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    _assert_bars_1s_match_ticks(conn)
    # The symbols stored before markets were recorded held real trades.
    kinds = conn.execute("SELECT symbol, kind FROM market_kinds ORDER BY symbol").fetchall()
    assert kinds == [(symbol, "exchange") for symbol in sorted({row[0] for row in rows})]
    migrated = conn.execute(
        "SELECT symbol, trade_id, ts, price, size, side, recv_ts, last_trade_id, source"
        " FROM ticks ORDER BY symbol, trade_id"
    ).fetchall()
    assert migrated == [(*row, row[1], "ws") for row in sorted(rows)]
    with pytest.raises(sqlite3.IntegrityError, match="ticks are immutable"):
        conn.execute("UPDATE ticks SET price = '1'")
    conn.close()


def test_rows_covering_several_ids_count_every_trade_and_show_in_coverage(
    tmp_path: Path,
) -> None:
    """A back-filled aggregate row covers `trade_id..last_trade_id`: the bars count its trades,
    the summary its ids, and the coverage sees the holes that are left (and any overlap)."""
    store = TickStore.open(tmp_path / "t.db", busy_timeout_ms=1_000)
    ws = [("BTCUSDT", i, 1_000 + i, "10.5", "1", "buy", 2_000) for i in (1, 2, 3, 10, 11)]
    ranged = [
        ("BTCUSDT", 4, 1_004, "10.6", "0.5", "sell", 3_000, 6, "rest-agg"),
        ("BTCUSDT", 7, 1_007, "10.7", "2", "buy", 3_000, 7, "rest"),
    ]
    assert store.write([*ws, *ranged]) == 7
    assert store.write(ranged) == 0
    conn = store.conn
    _assert_bars_1s_match_ticks(conn)
    assert conn.execute("SELECT trades, volume FROM bars_1s").fetchall() == [(9, 7.5)]
    store.close()
    history = History(tmp_path / "t.db")
    summary = history.summary("BTCUSDT")
    assert summary is not None
    assert (summary.rows, summary.trade_ids, summary.missing_trade_ids) == (7, 9, 2)
    assert summary.rows_by_source == {"ws": 5, "rest-agg": 1, "rest": 1}
    coverage = history.coverage("BTCUSDT")
    assert coverage.holes == [(8, 9)] and coverage.overlaps == 0
    rows = [row for chunk in history.tick_rows("BTCUSDT", 0, 5_000) for row in chunk]
    assert rows[3] == (1_004, 4, "10.6", "0.5", "sell", 3_000, 6, "rest-agg")
    history.close()
    writer = sqlite3.connect(tmp_path / "t.db")
    writer.execute("INSERT INTO ticks VALUES ('BTCUSDT', 5, 1005, '1', '1', 'buy', 1, 5, 'ws')")
    writer.commit()
    writer.close()
    assert History(tmp_path / "t.db").coverage("BTCUSDT").overlaps == 1


def test_writers_starting_together_migrate_once(tmp_path: Path) -> None:
    path, errors = tmp_path / "t.db", []

    def open_one() -> None:
        try:
            open_for_writing(path).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_summary_symbols_and_gaps(tmp_path: Path) -> None:
    ticks = [t for t in recorded_ticks(6_000) if t.symbol == "ETHUSDT"]
    kept = ticks[:1_000] + ticks[1_010:]
    quiet_from, quiet_to = ticks[1_500].ts, ticks[2_500].ts
    kept = [t for t in kept if not quiet_from < t.ts < quiet_to]
    store = TickStore.open(tmp_path / "t.db", busy_timeout_ms=1_000)
    store.write(_rows(kept))
    store.close()
    history = History(tmp_path / "t.db")
    assert history.symbols() == ["ETHUSDT"]
    summary = history.summary("ethusdt")
    assert summary is not None
    assert (summary.rows, summary.first_ts, summary.last_ts) == (len(kept), kept[0].ts, kept[-1].ts)
    assert summary.missing_trade_ids == len(ticks) - len(kept)
    assert history.summary("BTCUSDT") is None
    threshold = int(np.sort(np.diff([t.ts for t in kept]))[-3])
    expected = [
        TimeGap(a.ts, b.ts, b.trade_id - a.trade_id - 1)
        for a, b in itertools.pairwise(kept)
        if b.ts - a.ts > threshold
    ]
    assert history.gaps("ETHUSDT", threshold) == expected
    quiet = [
        g
        for g in history.gaps("ETHUSDT", 1_000)
        if (g.after_ts, g.before_ts) == (quiet_from, quiet_to)
    ]
    assert len(quiet) == 1 and quiet[0].missing_ids > 0
    history.close()
