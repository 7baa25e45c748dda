"""`python -m services.writer export | stats` on a real tick database."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.writer.cli import main
from services.writer.store import TickStore
from shared.history import History
from shared.times import iso_ms
from testkit.processes import REPO
from testkit.recorded import recorded_ticks
from tests.writer_support import pandas_bars


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "ticks.db"
    ticks = recorded_ticks(20_000)
    quiet = (ticks[0].ts + 20_000, ticks[0].ts + 30_000)
    ticks = [t for t in ticks if t.symbol == "BTCUSDT" or not quiet[0] < t.ts < quiet[1]]
    store = TickStore.open(path, busy_timeout_ms=1_000)
    store.write([(t.symbol, t.trade_id, t.ts, t.price, t.size, t.side, t.recv_ts) for t in ticks])
    store.close()
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_ticks_writes_exact_rows_with_iso_times(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = History(db)
    first, last = history.span("BTCUSDT")  # type: ignore[misc]
    start, end = first + (last - first) // 4, last - (last - first) // 4
    out = tmp_path / "btc.csv"
    code, _, err = _run(
        capsys, "export", "--db", str(db), "--symbol", "btcusdt",
        "--start", iso_ms(start), "--end", str(end), "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    with out.open() as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == [
        "time", "ts", "trade_id", "price", "size", "side", "recv_ts", "last_trade_id", "source",
    ]  # fmt: skip
    conn = history.conn
    expected = conn.execute(
        "SELECT ts, trade_id, price, size, side, recv_ts FROM ticks "
        "WHERE symbol = 'BTCUSDT' AND ts >= ? AND ts < ? ORDER BY ts, trade_id",
        (start, end),
    ).fetchall()
    assert len(rows) - 1 == len(expected) > 500
    for row, (ts, trade_id, price, size, side, recv_ts) in zip(rows[1:], expected, strict=True):
        assert row == [
            iso_ms(ts), str(ts), str(trade_id), price, size, side, str(recv_ts), str(trade_id),
            "ws",
        ]  # fmt: skip
    assert "100%" in err and "ticks" in err
    assert err.strip().splitlines()[-1] == f"{len(expected):,} ticks of BTCUSDT written to {out}"
    history.close()


def test_export_bars_equal_pandas_and_default_to_the_whole_history(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eth-1m.csv"
    code, _, err = _run(
        capsys, "export", "--db", str(db), "--symbol", "ETHUSDT", "--tf", "1m", "--out", str(out)
    )
    assert code == 0, err
    bars = pd.read_csv(out)
    assert list(bars.columns) == [
        "time", "start", "open", "high", "low", "close", "volume", "vwap", "trades",
    ]  # fmt: skip
    ticks = History(db).ticks("ETHUSDT", 0, 2**62)
    expected = pandas_bars(ticks, "1min")
    assert list(bars["time"]) == [iso_ms(s) for s in expected["start"]]
    for column in ("start", "trades", "open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[column], expected[column], err_msg=column)
    np.testing.assert_allclose(bars["vwap"], expected["vwap"], rtol=1e-12)


def test_export_to_stdout(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "export", "--db", str(db), "--symbol", "ETHUSDT", "--tf", "1h", "--out", "-",
        "--quiet",
    )  # fmt: skip
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] == "time" and len(rows) >= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2025-13-01"], "--start '2025-13-01' is not an ISO-8601 time"),
        (["--end", "noon"], "--end 'noon' is not an ISO-8601 time"),
        (["--start", "2025-12-17", "--end", "2025-12-16"], "must be before --end"),
        (["--start", "9999999999999999", "--end", "1"], "'9999999999999999' is after the year"),
        (["--end", "1969-07-20T20:17:40Z"], "--end '1969-07-20T20:17:40Z' is before 1970"),
        (["--symbol", "btc usdt"], "--symbol 'btc usdt' is not a symbol"),
        (["--symbol", "SOLUSDT"], "no ticks of SOLUSDT in"),
        (["--tf", "90x"], "--tf '90x' is not a timeframe"),
        (["--tf", "2d"], "--tf '2d' is longer than a day"),
        (["--out", "/nonexistent/dir/f.csv"], "no such directory '/nonexistent/dir'"),
        (["--out", "/"], "is a directory"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = {"--symbol": "BTCUSDT", "--out": str(tmp_path / "x.csv")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["export", "--db", str(db), *[p for pair in base.items() for p in pair]]
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("writer export: ") and message in err
    assert not (tmp_path / "x.csv").exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_database_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "stats", "--db", str(tmp_path / "none.db"))
    assert code == 1
    assert (
        err.strip() == f"writer stats: no tick database at {tmp_path / 'none.db'} yet "
        "(the writer creates it)"
    )


def test_stats_prints_rows_span_and_gaps(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "stats", "--db", str(db), "--gap", "2s", "--top", "3")
    assert code == 0
    history = History(db)
    lines = out.splitlines()
    assert lines[0].startswith(f"tick database {db} (")
    assert lines[1].split() == [
        "symbol", "rows", "trade", "ids", "back-filled", "first", "trade", "last", "trade",
        "span", "missing", "ids", "gaps", ">", "2s",
    ]  # fmt: skip
    for line, symbol in zip(lines[2:4], ["BTCUSDT", "ETHUSDT"], strict=True):
        summary = history.summary(symbol)
        assert summary is not None
        cells = line.split()
        assert cells[:6] == [
            symbol,
            f"{summary.rows:,}",
            f"{summary.trade_ids:,}",
            "0",
            iso_ms(summary.first_ts),
            iso_ms(summary.last_ts),
        ]
        assert cells[7:] == [
            f"{summary.missing_trade_ids:,}",
            f"{len(history.gaps(symbol, 2_000)):,}",
        ]
    listed = [line for line in lines if " quiet " in line]
    gaps = {symbol: history.gaps(symbol, 2_000) for symbol in ("BTCUSDT", "ETHUSDT")}
    assert len(listed) == sum(min(3, len(found)) for found in gaps.values()) > 0
    longest = max(gaps["ETHUSDT"] + gaps["BTCUSDT"], key=lambda gap: gap.length_ms)
    assert any(iso_ms(longest.after_ts) in line for line in listed)


def test_a_stored_tick_beyond_the_year_9999_is_listed_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "future.db"
    store = TickStore.open(db, busy_timeout_ms=1_000)
    store.write([
        ("BTCUSDT", 1, 1765892498698, "87162.1", "0.002", "buy", 1765892498705),
        ("BTCUSDT", 2, 9_000_000_000_000_000, "87162.2", "0.001", "sell", 1765892498706),
    ])  # fmt: skip
    store.close()
    code, out, err = _run(capsys, "stats", "--db", str(db))
    assert (code, err) == (0, "")
    row = out.splitlines()[2]
    assert "2025-12-16T13:41:38.698Z" in row and "9000000000000000 ms (after the year 9999)" in row
    out_file = tmp_path / "all.csv"
    code, _, err = _run(
        capsys, "export", "--db", str(db), "--symbol", "BTCUSDT", "--out", str(out_file), "--quiet"
    )
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out_file.read_text())))
    assert [r[0] for r in rows[1:]] == [
        "2025-12-16T13:41:38.698Z", "9000000000000000 ms (after the year 9999)",
    ]  # fmt: skip


def test_the_real_command_line(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "ticks.csv"
    result = subprocess.run(
        [sys.executable, "-m", "services.writer", "export", "--db", str(db), "--symbol",
         "ETHUSDT", "--start", "2025-12-16", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith(
        "time,ts,trade_id,price,size,side,recv_ts,last_trade_id,source\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "services.writer", "stats", "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unrecognized arguments: --check" in result.stderr
