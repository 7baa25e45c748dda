"""The chart as data: traces, bands and threshold lines, empty states, typed arrays reduced to
the screen, and the points a live step appends."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from services.dashboard.figures import (
    ChartData,
    Focus,
    build_figure,
    extension,
    forming_traces,
    traces,
)
from services.dashboard.reduce import kept_extremes
from shared.schemas import Alert, Bar, PairStat
from tests.figure_support import by_name, drawn, values

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


def test_every_series_is_drawn_on_one_time_axis() -> None:
    spec = build_figure(chart(), k=2.0, uirevision="view-1")
    figure = go.Figure(spec)
    named = by_name(spec)
    forming = forming_traces("BTCUSDT", "ETHUSDT")
    assert list(named) == [t.name for t in [*traces("BTCUSDT", "ETHUSDT"), *forming]]
    meta = figure.layout.meta["forming"]
    lines = {f["line"]: spec["data"][f["trace"]] for f in meta}
    assert [f["field"] for f in meta] == ["a_close", "b_close", "zscore"]
    for line, segment in lines.items():  # on the axes of the line each continues
        assert (segment["xaxis"], segment["yaxis"]) == (
            spec["data"][line]["xaxis"],
            spec["data"][line]["yaxis"],
        )
        assert segment["line"]["dash"] == "dot" and not segment["x"]
    assert list(named["BTCUSDT"].y) == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert named["ETHUSDT"].raw["yaxis"] == "y2"  # right axis of the price row
    assert list(named["z-score"].x) == [T0 + i * 1000 for i in range(5)]
    assert list(named["BTCUSDT volume"].y) == pytest.approx([2.0 * (100 + i) for i in range(5)])
    assert named["BTCUSDT"].raw["x"]["dtype"] == "f8", "a typed array, not a list"
    assert figure.layout.uirevision == "view-1"
    assert figure.layout.xaxis.type == "date"
    assert {figure.layout["xaxis" if i == 1 else f"xaxis{i}"].matches for i in range(1, 5)} == {
        "x5"
    }  # one time axis


def test_bands_and_threshold_lines_use_the_same_k() -> None:
    spec = build_figure(chart(), k=2.5)
    figure = go.Figure(spec)
    named = by_name(spec)
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
    marker = by_name(build_figure(chart(alerts=alerts), k=2.0))["alert"]
    assert isinstance(marker.raw["x"], list), "markers stay plain lists, with their text"
    assert list(marker.y) == pytest.approx([2.4, 0.3, 0.0])
    assert "z2: zscore 2.400" in marker.text[0] and "high" in marker.text[0]


def test_empty_rows_say_what_is_missing() -> None:
    empty = {1: "Waiting for the first 1s bars of BTCUSDT", 2: "Waiting for statistics"}
    spec = build_figure(ChartData("BTCUSDT", "ETHUSDT", "1s"), k=2.0, empty=empty)
    texts = {a.text: (a.xref, a.yref) for a in go.Figure(spec).layout.annotations}
    assert texts["Waiting for the first 1s bars of BTCUSDT"] == ("x domain", "y domain")
    assert texts["Waiting for statistics"] == ("x2 domain", "y3 domain")
    assert all(len(trace.x) == 0 for trace in drawn(spec))


def test_themes_change_colours_not_data() -> None:
    dark = build_figure(chart(), k=2.0)
    light = build_figure(chart(), k=2.0, theme="light")
    assert dark["layout"]["paper_bgcolor"] != light["layout"]["paper_bgcolor"]
    assert [list(t.y) for t in drawn(dark)] == [list(t.y) for t in drawn(light)]


def test_live_step_sends_only_the_new_points() -> None:
    new = chart(2, bars_a=bars(2, T0 + 5000), bars_b=bars(2, T0 + 5000), stats=stats(2, T0 + 5000))
    step = extension(new, k=2.0).to_store()
    lines = dict(zip(step["lines"]["traces"], step["lines"]["x"], strict=True))
    ys = dict(zip(step["lines"]["traces"], step["lines"]["y"], strict=True))
    assert lines[0] == [T0 + 5000, T0 + 6000]
    assert ys[6] == pytest.approx([0.0, 0.1])
    assert 7 not in lines and step["marks"]["traces"] == [], "no new alert: markers untouched"
    assert sorted(lines) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]


def test_a_missing_value_travels_as_null() -> None:
    gap = PairStat(T0, 100.0, 10.0, 1.0, 9.5, 5.0, float("nan"), 0.9, 4.0, 0.5, 60, 60, "ols")
    step = extension(chart(0, stats=[gap]), k=2.0).to_store()
    ys = dict(zip(step["lines"]["traces"], step["lines"]["y"], strict=True))
    assert ys[6] == [None]  # the z-score; JSON has no NaN


def test_alert_markers_extend_their_hover_text_too() -> None:
    alert = Alert("z2", "BTCUSDT-ETHUSDT", "1s", "zscore", -2.2, 2.0, T0, "low")
    step = extension(chart(0, alerts=[alert]), k=2.0).to_store()
    assert step["lines"]["traces"] == []
    assert step["marks"]["traces"] == [7]
    assert step["marks"]["y"] == [[-2.2]] and "low" in step["marks"]["text"][0][0]


def test_a_full_render_reduces_each_trace_to_the_screen_keeping_extremes() -> None:
    """MinMaxLTTB: at most the screen's points, the first and the last kept, and every
    bucket's extremes, so the overall high and low survive; checked by a plain loop."""
    n = 10_000
    rng = np.random.default_rng(7)
    closes = 100.0 + np.cumsum(rng.normal(0, 0.1, n))
    closes[4_321] += 25.0  # a spike
    many = [Bar(T0 + i * 1000, c, c, c, float(c), 1.0, c, 1) for i, c in enumerate(closes)]
    spec = build_figure(chart(bars_a=many, bars_b=[], stats=[]), k=2.0, screen_points=500)
    price = drawn(spec)[0]
    assert len(price.x) == 500
    assert price.x[0] == T0 and price.x[-1] == T0 + (n - 1) * 1000
    assert np.all(np.diff(price.x) > 0)
    assert price.y.max() == closes.max() and price.y.min() == closes.min()
    by_time = {T0 + i * 1000: c for i, c in enumerate(closes)}
    assert all(by_time[int(x)] == y for x, y in zip(price.x, price.y, strict=True))
    full = build_figure(chart(bars_a=many, bars_b=[], stats=[]), k=2.0)
    assert len(values(full["data"][0]["x"])) == n, "no reduction asked: every point"


def test_a_zoomed_range_is_drawn_bar_for_bar_with_reduced_context_around_it() -> None:
    n = 10_000
    rng = np.random.default_rng(11)
    closes = 100.0 + np.cumsum(rng.normal(0, 0.1, n))
    many = [Bar(T0 + i * 1000, c, c, c, float(c), 1.0, c, 1) for i, c in enumerate(closes)]
    focus = Focus(T0 + 6_000 * 1000, T0 + 6_399 * 1000)
    data = chart(bars_a=many, bars_b=[], stats=[])
    price = drawn(build_figure(data, k=2.0, screen_points=500, focus=focus))[0]
    assert len(price.x) <= 500 and np.all(np.diff(price.x) > 0)
    inside = [(int(x), y) for x, y in zip(price.x, price.y, strict=True)
              if focus.start <= x <= focus.end]  # fmt: skip
    assert inside == [(bar.start, bar.close) for bar in many[6_000:6_400]]
    assert price.x[0] == T0 and price.x[-1] == T0 + (n - 1) * 1000, "the context stays"
    assert price.y.max() == closes.max() and price.y.min() == closes.min()
    unfocused = drawn(build_figure(data, k=2.0, screen_points=500))[0]
    assert sum(focus.start <= x <= focus.end for x in unfocused.x) < 100
    wide = Focus(T0, T0 + (n - 1) * 1000)
    reduced = drawn(build_figure(data, k=2.0, screen_points=500, focus=wide))[0]
    assert len(reduced.x) <= 500 and reduced.y.max() == closes.max()


@pytest.mark.parametrize("points", [1, 3, 5, 6, 9, 40])
def test_the_context_around_a_zoom_keeps_its_ends_and_extremes_at_any_budget(points: int) -> None:
    rng = np.random.default_rng(points)
    x, y = np.arange(1_000, dtype=np.float64), rng.normal(0, 1, 1_000)
    rows = kept_extremes(x, y, points)
    assert len(rows) <= max(points, 6) and rows[0] == 0 and rows[-1] == 999
    assert np.all(np.diff(rows) > 0)
    assert y[rows].max() == y.max() and y[rows].min() == y.min()
