"""The screener view's pure parts: rows, the changed rows, the filters (in the table's language
and on the server), the export, the heatmap and the clicks."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from services.dashboard import screener
from shared.correlation import CorrelationMatrix
from shared.pairstats import Stationarity
from shared.schemas import PairStat
from shared.screener import ScreenRow

LEGS = (("BTCUSDT", "ETHUSDT"), ("BTCUSDT", "SOLUSDT"), ("ETHUSDT", "SOLUSDT"))


def row(
    a: str, b: str, *, z: float = 1.0, coint: float | None = 0.2, ts: int = 60_000
) -> ScreenRow:
    stat = PairStat(ts, 100.0, 50.0, 0.5, 1.5, 25.0, z, 0.9, 24.0, 2.0, 60, 60, "ols")
    carried = Stationarity(adf_stat=-3.0, adf_pvalue=0.01, half_life=12.5, coint_pvalue=coint)
    return ScreenRow(a, b, stat, carried, ts - 3_000 if coint is not None else None)


def rows(**changes: dict[str, object]) -> dict[str, ScreenRow]:
    made = {f"{a}-{b}": row(a, b) for a, b in LEGS}
    for pair, values in changes.items():
        a, b = pair.split("_")
        made[f"{a}-{b}"] = row(a, b, **values)  # type: ignore[arg-type]
    return made


def test_a_table_row_shows_the_statistics_and_the_age_of_the_tests() -> None:
    shown = screener.table_row(row("BTCUSDT", "ETHUSDT", z=-2.5), "1s")
    assert shown["id"] == "BTCUSDT-ETHUSDT" and shown["pair"] == "BTCUSDT / ETHUSDT"
    assert (shown["zscore"], shown["abs_z"], shown["beta"], shown["coint_pvalue"]) == (
        -2.5, 2.5, 1.5, 0.2)  # fmt: skip
    assert shown["half_life"] == 12.5 and shown["half_life_s"] == 12.5
    assert screener.table_row(row("A", "B"), "1m")["half_life_s"] == 750.0
    assert shown["tests_bars_ago"] == 3 and shown["bars"] == 60
    assert shown["as_of"] == "1970-01-01T00:01:01.000Z" and shown["as_of_time"] == "00:01:01"
    unknown = screener.table_row(row("BTCUSDT", "ETHUSDT", z=math.nan, coint=None), "1s")
    assert unknown["zscore"] is None and unknown["abs_z"] is None
    assert unknown["coint_pvalue"] is None and unknown["tests_bars_ago"] is None


def stored(made: dict[str, ScreenRow]) -> dict[str, str]:
    return {pair: row.to_json() for pair, row in made.items()}


def test_only_the_rows_that_changed_travel_after_the_first_update() -> None:
    cache = screener.TableRows()
    first = cache.build(stored(rows()), LEGS, "1s")
    sent = screener.update(first.rows, first.digests, None, "1s")
    assert sent.full == first.rows and not sent.changed
    again = screener.update(first.rows, first.digests, sent.held, "1s")
    assert again.full is None and again.changed == {}
    moved = cache.build(stored(rows(BTCUSDT_SOLUSDT={"z": 3.0})), LEGS, "1s")
    patch = screener.update(moved.rows, moved.digests, again.held, "1s")
    assert patch.full is None and list(patch.changed) == [1]
    assert patch.changed[1]["zscore"] == 3.0
    assert screener.update(moved.rows, moved.digests, patch.held, "1m").full == moved.rows
    fewer = moved.rows[:2]
    assert screener.update(fewer, moved.digests[:2], patch.held, "1s").full == fewer


def test_the_cache_builds_what_a_fresh_build_builds_and_skips_bad_rows() -> None:
    cache = screener.TableRows()
    cache.build(stored(rows()), LEGS, "1s")
    later = {**stored(rows(ETHUSDT_SOLUSDT={"z": -1.5})), "BTCUSDT-SOLUSDT": "{not json"}
    cached, fresh = cache.build(later, LEGS, "1s"), screener.TableRows().build(later, LEGS, "1s")
    assert cached == fresh and cached.skipped == 1
    assert [r["id"] for r in cached.rows] == ["BTCUSDT-ETHUSDT", "ETHUSDT-SOLUSDT"]
    assert cached.rows[1]["zscore"] == -1.5
    assert cache.build(later, LEGS, "1m").rows[0]["half_life_s"] == 750.0  # per timeframe


def test_the_filters_say_the_same_in_the_tables_language_and_on_the_server() -> None:
    keep = screener.ScreenFilter.of_controls(["cointegrated", "stretched"], " btc", "2.5")
    assert keep.query() == "{coint_pvalue} < 0.05 && {abs_z} > 2.5 && {id} contains BTC"
    table = screener.TableRows().build(
        stored(rows(BTCUSDT_ETHUSDT={"z": 3.0, "coint": 0.01},
                    ETHUSDT_SOLUSDT={"z": -3.0, "coint": 0.01},
                    BTCUSDT_SOLUSDT={"z": 2.0, "coint": 0.01})),
        LEGS, "1s",
    ).rows  # fmt: skip
    assert [r["id"] for r in table if keep.keeps(r)] == ["BTCUSDT-ETHUSDT"]
    assert screener.ScreenFilter.of_controls(None, None, "x").query() == ""
    assert screener.ScreenFilter.of_controls([], "", -1).k == 2.0
    assert all(screener.ScreenFilter().keeps(r) for r in table)


def test_the_export_has_the_tables_columns_at_full_precision() -> None:
    series = screener.Series("1s", 60, "ols")
    keep = screener.ScreenFilter(cointegrated=True)
    built = screener.TableRows().build(
        stored(rows(BTCUSDT_SOLUSDT={"coint": 0.001, "z": 1 / 3})), LEGS, "1s"
    )
    export = screener.export(built, series, keep)
    assert export.filename == "screener_1s_w60_ols.csv" and export.rows == 1
    parsed = list(csv.DictReader(io.StringIO(export.text)))
    assert list(parsed[0]) == [column.export_id for column in screener.COLUMNS]
    assert "as_of" in parsed[0] and "as_of_time" not in parsed[0]
    assert parsed[0]["pair"] == "BTCUSDT-SOLUSDT" and float(parsed[0]["zscore"]) == 1 / 3
    assert parsed[0]["as_of"] == "1970-01-01T00:01:01.000Z"


def test_the_heatmap_is_sent_again_only_when_the_matrix_moved_on_enough() -> None:
    series = screener.Series("1s", 60, "ols")
    built = screener.TableRows().build(stored(rows()), LEGS, "1s")

    def matrix(ts: int) -> CorrelationMatrix:
        return CorrelationMatrix(ts, "1s", 60, 61, ("BTCUSDT", "ETHUSDT"), np.eye(2))

    def shown(
        at: CorrelationMatrix | None, held: dict[str, object] | None
    ) -> screener.ScreenerScreen:
        return screener.screen(built, at, series, 3, held, "dark", 0)

    first = shown(matrix(10_000), None)
    assert first.heatmap is not None
    soon = shown(matrix(10_000 + screener.HEATMAP_EVERY_MS - 1_000), first.update.held)
    assert soon.heatmap is None
    later = shown(matrix(10_000 + screener.HEATMAP_EVERY_MS), soon.update.held)
    assert later.heatmap is not None and later.heatmap["data"][0]["x"] == ["BTCUSDT", "ETHUSDT"]
    assert shown(matrix(10_000), {**later.update.held, "series": "other"}).heatmap is not None
    none_yet = shown(None, None)
    assert none_yet.heatmap is not None and shown(None, none_yet.update.held).heatmap is None


def test_the_series_asks_for_views_only_beyond_the_default() -> None:
    assert screener.Series.of_controls("1s", 60, "ols", 60).asked(LEGS, 60, 50) == []
    other = screener.Series.of_controls("1m", "120", "kalman", 60)
    assert other.asked(LEGS, 60, 2) == ["BTCUSDT-ETHUSDT:1m:w120:kalman",
                                        "BTCUSDT-SOLUSDT:1m:w120:kalman"]  # fmt: skip
    assert other.key(LEGS, 60) == "analytics:screen:1m:w120:kalman"
    with pytest.raises(ValueError, match="not a number of bars"):
        screener.Series.of_controls("1s", "many", "ols", 60)


def test_the_status_says_what_is_shown_and_how_fresh() -> None:
    series = screener.Series("1s", 60, "ols")
    assert "no pairs" in screener.status(0, 0, series, 0, None, 0)
    line = screener.status(2, 3, series, 1, 5_000, 8_000)
    assert "2 of 3 pairs" in line and "3 s old" in line and "1 malformed" in line


def test_a_click_on_a_row_or_a_cell_opens_a_served_pair() -> None:
    assert screener.row_pair({"row_id": "ETHUSDT-SOLUSDT"}, LEGS) == ("ETHUSDT", "SOLUSDT")
    assert (
        screener.row_pair({"row_id": "X-Y"}, LEGS) is None and screener.row_pair(None, LEGS) is None
    )
    assert screener.clicked_pair({"x": "SOLUSDT", "y": "BTCUSDT"}, LEGS) == ("BTCUSDT", "SOLUSDT")
    assert screener.clicked_pair({"x": "BTCUSDT", "y": "BTCUSDT"}, LEGS) is None


def test_the_heatmap_draws_the_matrix_in_its_order() -> None:
    values = np.array([[1.0, 0.8, np.nan], [0.8, 1.0, np.nan], [np.nan, np.nan, np.nan]])
    matrix = CorrelationMatrix(1_000, "1s", 60, 61, ("ETHUSDT", "BTCUSDT", "SOLUSDT"), values)
    figure = screener.heatmap(matrix, "dark")
    trace = figure["data"][0]
    assert trace["x"] == trace["y"] == ["ETHUSDT", "BTCUSDT", "SOLUSDT"]
    assert trace["z"][0] == [1.0, 0.8, None] and (trace["zmin"], trace["zmax"]) == (-1, 1)
    assert "60 1s returns" in figure["layout"]["title"]["text"]
    assert screener.heatmap(None, "light")["data"] == []
