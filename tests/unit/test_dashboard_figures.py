"""The chart as data: traces, bands and threshold lines, empty states, and the live Patch."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest

from services.dashboard.figures import ChartData, build_figure, extend_patch, thin, traces
from shared.schemas import Alert, Bar, PairStat

T0 = 1_765_892_498_000


def bars(n: int, start: int = T0, close: float = 100.0) -> list[Bar]:
    return [Bar(start + i * 1000, close, close + 1, close - 1, close + i, 2.0, close, 3)
            for i in range(n)]  # fmt: skip


def stats(n: int, start: int = T0) -> list[PairStat]:
    return [
        PairStat(start + i * 1000, 100.0, 10.0, 1.0, 9.5, 5.0 + i, 0.1 * i, 0.9, 4.0 + i, 0.5,
                 60, 60, "ols")
        for i in range(n)
    ]  # fmt: skip


def chart(n: int = 5, **overrides: Any) -> ChartData:
    values: dict[str, Any] = {"bars_a": bars(n), "bars_b": bars(n, close=10.0), "stats": stats(n)}
    values.update(overrides)
    return ChartData("BTCUSDT", "ETHUSDT", "1s", **values)


def by_name(figure: Any) -> dict[str, Any]:
    return {trace.name: trace for trace in figure.data}


def test_every_series_is_drawn_on_one_time_axis() -> None:
    figure = go.Figure(build_figure(chart(), k=2.0, uirevision="view-1"))
    named = by_name(figure)
    assert list(named) == [t.name for t in traces("BTCUSDT", "ETHUSDT")]
    assert list(named["BTCUSDT"].y) == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert named["ETHUSDT"].yaxis == "y2"  # right axis of the price row
    assert list(named["z-score"].x) == [T0 + i * 1000 for i in range(5)]
    assert list(named["BTCUSDT volume"].y) == pytest.approx([2.0 * (100 + i) for i in range(5)])
    assert figure.layout.uirevision == "view-1"
    assert figure.layout.xaxis.type == "date"
    assert {figure.layout["xaxis" if i == 1 else f"xaxis{i}"].matches for i in range(1, 5)} == {
        "x5"
    }  # one time axis


def test_bands_and_threshold_lines_use_the_same_k() -> None:
    figure = go.Figure(build_figure(chart(), k=2.5))
    named = by_name(figure)
    assert list(named["+k·σ"].y) == [4.0 + i + 2.5 * 0.5 for i in range(5)]
    assert list(named["−k·σ"].y) == [4.0 + i - 2.5 * 0.5 for i in range(5)]
    levels = sorted(shape.y0 for shape in figure.layout.shapes)
    assert levels == [-2.5, 0.0, 2.5]
    assert all(shape.yref == "y4" for shape in figure.layout.shapes)


def test_alert_markers_sit_on_the_z_score() -> None:
    alerts = [
        Alert("z2", "BTCUSDT-ETHUSDT", "1s", "zscore", 2.4, 2.0, T0 + 1000, "high"),
        Alert("corr", "BTCUSDT-ETHUSDT", "1s", "corr", 0.2, 0.5, T0 + 3000, "low corr"),
        Alert("gone", "BTCUSDT-ETHUSDT", "1s", "beta", 1.0, 0.5, T0 + 99_000),
    ]
    marker = by_name(go.Figure(build_figure(chart(alerts=alerts), k=2.0)))["alert"]
    assert list(marker.y) == pytest.approx([2.4, 0.3, 0.0])
    assert "z2: zscore 2.400" in marker.text[0] and "high" in marker.text[0]


def test_empty_rows_say_what_is_missing() -> None:
    empty = {1: "Waiting for the first 1s bars of BTCUSDT", 2: "Waiting for statistics"}
    figure = go.Figure(build_figure(ChartData("BTCUSDT", "ETHUSDT", "1s"), k=2.0, empty=empty))
    texts = {a.text: (a.xref, a.yref) for a in figure.layout.annotations}
    assert texts["Waiting for the first 1s bars of BTCUSDT"] == ("x domain", "y domain")
    assert texts["Waiting for statistics"] == ("x2 domain", "y3 domain")
    assert all(len(trace.x) == 0 for trace in figure.data)


def test_themes_change_colours_not_data() -> None:
    dark = go.Figure(build_figure(chart(), k=2.0))
    light = go.Figure(build_figure(chart(), k=2.0, theme="light"))
    assert dark.layout.paper_bgcolor != light.layout.paper_bgcolor
    assert [list(t.y) for t in dark.data] == [list(t.y) for t in light.data]


def operations(patch: Any) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = patch.to_plotly_json()["operations"]
    return ops


def test_live_patch_sends_only_the_new_points() -> None:
    new = chart(2, bars_a=bars(2, T0 + 5000), bars_b=bars(2, T0 + 5000), stats=stats(2, T0 + 5000))
    patch, counts = extend_patch(new, {"a": 5, "b": 5, "stats": 5, "alerts": 0}, cap=100, k=2.0)
    ops = operations(patch)
    assert counts == {"a": 7, "b": 7, "stats": 7, "alerts": 0}
    assert {op["operation"] for op in ops} == {"Extend"}
    extended = {tuple(op["location"]): op["params"]["value"] for op in ops}
    assert extended[("data", 0, "x")] == [T0 + 5000, T0 + 6000]
    assert extended[("data", 6, "y")] == pytest.approx([0.0, 0.1])
    assert ("data", 7, "x") not in extended  # no new alert: the marker trace is untouched


def test_live_patch_drops_the_oldest_points_beyond_the_cap() -> None:
    new = chart(3, bars_a=bars(3, T0 + 9000), bars_b=[], stats=[])
    patch, counts = extend_patch(new, {"a": 9, "b": 9, "stats": 9, "alerts": 0}, cap=10, k=2.0)
    assert counts == {"a": 10, "b": 9, "stats": 9, "alerts": 0}
    deletes = [op["location"] for op in operations(patch) if op["operation"] == "Delete"]
    # Two points beyond the cap, in each of x and y, of both traces fed by leg A.
    assert deletes.count(["data", 0, "x", 0]) == 2 and deletes.count(["data", 9, "y", 0]) == 2
    assert len(deletes) == 8


def test_alert_markers_extend_their_hover_text_too() -> None:
    alert = Alert("z2", "BTCUSDT-ETHUSDT", "1s", "zscore", -2.2, 2.0, T0, "low")
    patch, counts = extend_patch(chart(0, alerts=[alert]), {"alerts": 1}, cap=1, k=2.0)
    ops = operations(patch)
    assert [op["location"] for op in ops if op["operation"] == "Extend"] == [
        ["data", 7, "x"], ["data", 7, "y"], ["data", 7, "text"]
    ]  # fmt: skip
    assert len([op for op in ops if op["operation"] == "Delete"]) == 3
    assert counts["alerts"] == 1


def test_thin_keeps_the_newest_and_at_most_cap() -> None:
    rows = list(range(10_001))
    thinned = thin(rows, 1000)
    assert len(thinned) <= 1000 and thinned[-1] == 10_000
    assert thin(rows[:10], 100) == rows[:10]
