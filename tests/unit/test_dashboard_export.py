"""The CSV export: header row, ISO-8601 UTC times, both legs and the statistics on one time axis."""

from __future__ import annotations

import csv
import io

from services.dashboard.export import filename, header, to_csv
from shared.schemas import Bar, PairStat

T0 = 1_765_892_498_000


def bar(start: int, close: float) -> Bar:
    return Bar(start, close, close + 1, close - 1, close, 2.5, close, 7)


def stat(ts: int, z: float, adf: float | None = None) -> PairStat:
    return PairStat(ts, 100.0, 10.0, 1.0, 9.9, 0.5, z, 0.8, 0.1, 0.2, 60, 60, "ols",
                    adf_pvalue=adf)  # fmt: skip


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_rows_join_both_legs_and_statistics_by_time() -> None:
    text = to_csv(
        "BTCUSDT", "ETHUSDT",
        [bar(T0, 100.0), bar(T0 + 1000, 101.0)],
        [bar(T0 + 1000, 10.0)],
        [stat(T0 + 1000, -1.25, adf=0.03)],
    )  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split(",") == header("BTCUSDT", "ETHUSDT")
    assert lines[0].startswith("time,BTCUSDT_open,BTCUSDT_high,")
    table = rows(text)
    assert [r["time"] for r in table] == ["2025-12-16T13:41:38.000Z", "2025-12-16T13:41:39.000Z"]
    first, second = table
    assert (
        first["BTCUSDT_close"] == "100.0" and first["ETHUSDT_close"] == "" and first["zscore"] == ""
    )
    assert second["ETHUSDT_close"] == "10.0" and second["zscore"] == "-1.25"
    assert (
        second["adf_pvalue"] == "0.03" and second["half_life"] == "" and second["method"] == "ols"
    )
    assert second["BTCUSDT_trades"] == "7"


def test_range_is_inclusive_and_either_end_may_be_open() -> None:
    bars = [bar(T0 + i * 1000, 100.0 + i) for i in range(5)]
    inside = rows(to_csv("A1", "B1", bars, [], [], T0 + 1000, T0 + 3000))
    assert [r["A1_close"] for r in inside] == ["101.0", "102.0", "103.0"]
    assert len(rows(to_csv("A1", "B1", bars, [], [], None, T0 + 1000))) == 2
    assert len(rows(to_csv("A1", "B1", bars, [], [], T0 + 4000, None))) == 1


def test_columns_a_source_lacks_can_be_left_out_and_nan_is_empty() -> None:
    odd = Bar(T0, 1.0, 1.0, 1.0, 1.0, 1.0, float("nan"), 0)
    text = to_csv("A1", "B1", [odd], [], [], bar_columns=("open", "close", "vwap"))
    assert text.splitlines()[0].startswith("time,A1_open,A1_close,A1_vwap,B1_open,")
    assert rows(text)[0]["A1_vwap"] == ""


def test_empty_export_still_has_its_header() -> None:
    assert to_csv("A1", "B1", [], [], []).splitlines() == [",".join(header("A1", "B1"))]


def test_file_name_says_pair_timeframe_and_range() -> None:
    assert filename("BTCUSDT", "ETHUSDT", "1m", T0, T0 + 60_000) == (
        "BTCUSDT-ETHUSDT_1m_20251216T134138Z_20251216T134238Z.csv"
    )
    assert filename("A1", "B1", "1s", None, None) == "A1-B1_1s_open_open.csv"
