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
from shared.history import BAR_COLUMNS, Gap, History
from shared.tickdb import MIGRATIONS, SCHEMA_VERSION, open_for_writing, seconds_of
from tests.writer_support import Published, pandas_bars, recorded_ticks

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


def test_an_older_database_is_migrated_and_its_bars_filled(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(f"BEGIN;{MIGRATIONS[0]}PRAGMA user_version = 1;COMMIT;")
    conn.executemany("INSERT INTO ticks VALUES (?, ?, ?, ?, ?, ?, ?)", _rows(recorded_ticks(4_000)))
    conn.close()
    conn = open_for_writing(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    _assert_bars_1s_match_ticks(conn)
    conn.close()


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
    times = np.array([t.ts for t in kept])
    threshold = int(np.sort(np.diff(times))[-3])
    expected = [Gap(int(a), int(b)) for a, b in itertools.pairwise(times) if b - a > threshold]
    assert history.gaps("ETHUSDT", threshold) == expected
    assert Gap(quiet_from, quiet_to) in history.gaps("ETHUSDT", 1_000)
    history.close()
