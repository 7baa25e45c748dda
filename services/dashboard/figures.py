"""The chart: pure functions from records to a Plotly figure, and to the points a live update
appends.

One figure, five rows on one shared time axis (zoom or pan any row and all follow):
prices (A left axis, B right axis), spread with mean and +/- k standard deviations, z-score with
the +/- k threshold lines and markers where alerts fired, rolling correlation, and volume in quote
currency (so both legs share an axis). The bands use the same k as the threshold lines: the spread
crosses a band exactly when the z-score crosses a threshold line.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import orjson
import plotly.graph_objects as go
from _plotly_utils.utils import to_typed_array_spec
from plotly.subplots import make_subplots

from services.dashboard.formatting import fmt_number
from services.dashboard.reduce import kept, kept_extremes
from shared.schemas import Alert, PairStat, record_fields
from shared.table import column

Role = Literal["a", "b", "stats", "alerts"]
Theme = Literal["dark", "light"]
Y = float | None
Columns = Callable[[str], np.ndarray]
"""A role's field by name, as a float64 array (NaN for a missing value)."""


class Series(NamedTuple):
    """One trace's points: x (epoch ms) and y as float64 arrays (NaN: no value), hover text."""

    x: np.ndarray
    y: np.ndarray
    text: list[str] | None

    def taken(self, rows: np.ndarray) -> Series:
        text = None if self.text is None else [self.text[i] for i in rows.tolist()]
        return Series(self.x[rows], self.y[rows], text)

    def reduced(self, points: int | None, focus: Focus | None = None) -> Series:
        """At most `points` points (MinMaxLTTB), all when None. With a `focus` (the zoomed
        range), the points inside it get all but a tenth of the budget, so a range of up to
        that many bars is drawn bar for bar, and a twentieth on each side keeps the context
        (with its extremes) the user pans or zooms out to."""
        if points is None or len(self.x) <= points:
            return self
        if focus is None:
            return self.taken(kept(self.x, self.y, points))
        lo, hi = np.searchsorted(self.x, [focus.start, focus.end + 1], side="left").tolist()
        context = max(points // 20, 6)
        x, y = self.x, self.y
        rows = [
            kept_extremes(x[:lo], y[:lo], context),
            lo + kept(x[lo:hi], y[lo:hi], points - 2 * context),
            hi + kept_extremes(x[hi:], y[hi:], context),
        ]
        return self.taken(np.concatenate(rows))


class Focus(NamedTuple):
    """The time range (epoch ms, both ends included) the user zoomed the chart to."""

    start: int
    end: int


ROW_TITLES = (
    "Prices",
    "Spread  A − β·B,  mean ± k·σ",
    "Z-score,  ± k threshold,  alerts fired",
    "Rolling correlation of log returns",
    "Volume (quote currency)",
)
ROW_HEIGHTS = (0.27, 0.2, 0.2, 0.13, 0.2)
COLORS = {
    "a": "#f0b90b",
    "b": "#4f9cf9",
    "spread": "#c792ea",
    "mean": "#9aa4b2",
    "band": "#7f8a99",
    "z": "#26c6a6",
    "alert": "#ff5370",
    "corr": "#ffab40",
}
THEMES: dict[str, dict[str, str]] = {
    "dark": {"template": "plotly_dark", "grid": "#263041", "text": "#c9d1dc", "paper": "#121821"},
    "light": {"template": "plotly_white", "grid": "#e3e7ee", "text": "#1f2937", "paper": "#ffffff"},
}


class DrawnBar(Protocol):
    """What the chart reads of a bar: a `shared.schemas.Bar`, or a `ChartBar`."""

    @property
    def start(self) -> int: ...

    @property
    def close(self) -> float: ...

    @property
    def volume(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ChartBar:
    """The fields of a bar the chart draws: a history range is read with these alone (a table
    of them, `shared.table.Table`), a third of the cost of whole bars."""

    start: int
    close: float
    volume: float


CHART_BAR_FIELDS = record_fields(ChartBar)


@dataclass(frozen=True)
class ChartData:
    """What one chart shows: both legs' bars, the pair statistics and the alerts that fired
    (records, or tables of them: `shared.table.Table`)."""

    a: str
    b: str
    tf: str
    bars_a: Sequence[DrawnBar] = ()
    bars_b: Sequence[DrawnBar] = ()
    stats: Sequence[PairStat] = ()
    alerts: Sequence[Alert] = ()

    def count(self, role: str) -> int:
        return len(self.rows(role))

    def rows(self, role: str) -> Sequence[Any]:
        return {"a": self.bars_a, "b": self.bars_b, "stats": self.stats, "alerts": self.alerts}[
            role
        ]


@dataclass(frozen=True)
class Trace:
    name: str
    role: Role
    row: int
    y: Callable[[Columns, float], np.ndarray]
    """The trace's values from its role's fields (not for alerts: `alert_y`)."""
    color: str
    kind: Literal["line", "markers", "area"] = "line"
    """`area`: a filled step line (volume): as readable as bars, and one SVG path for any
    number of points instead of one rectangle each."""
    secondary: bool = False
    dash: str = "solid"
    width: float = 1.4
    hover: str = "%{y:,.6g}"
    text: Callable[[Any], str] | None = None
    legend: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _band(sign: int) -> Callable[[Columns, float], np.ndarray]:
    def y(stat: Columns, k: float) -> np.ndarray:
        return stat("spread_mean") + sign * k * stat("spread_std")

    return y


def _field(name: str) -> Callable[[Columns, float], np.ndarray]:
    return lambda rows, k: rows(name)


def _quote_volume(bar: Columns, k: float) -> np.ndarray:
    return bar("volume") * bar("close")


def alert_y(alert: Alert, z_at: Callable[[int], float]) -> float:
    """Where an alert is marked: at its value when it is on the z-score, else at the z-score of
    its bar (0 when that bar is not on screen)."""
    return alert.value if alert.metric == "zscore" else z_at(alert.ts)


def _alert_text(alert: Alert) -> str:
    return (
        f"{alert.rule}: {alert.metric} {fmt_number(alert.value)} "
        f"(threshold {fmt_number(alert.threshold)})<br>{alert.message}"
    )


def traces(a: str, b: str) -> tuple[Trace, ...]:
    """The figure's traces in order; a Patch addresses them by this index."""
    return (
        Trace(a, "a", 1, _field("close"), COLORS["a"], hover="%{y:,.2f}"),
        Trace(b, "b", 1, _field("close"), COLORS["b"], secondary=True, hover="%{y:,.2f}"),
        Trace("spread", "stats", 2, _field("spread"), COLORS["spread"]),
        Trace("mean", "stats", 2, _field("spread_mean"), COLORS["mean"], dash="dash", width=1),
        Trace("+k·σ", "stats", 2, _band(1), COLORS["band"], dash="dot", width=1, legend=False),
        Trace("−k·σ", "stats", 2, _band(-1), COLORS["band"], dash="dot", width=1, legend=False),
        Trace("z-score", "stats", 3, _field("zscore"), COLORS["z"], hover="%{y:.2f}"),
        Trace(
            "alert",
            "alerts",
            3,
            _field("value"),
            COLORS["alert"],
            kind="markers",
            text=_alert_text,
            hover="%{text}",
            extra={"marker": {"symbol": "triangle-down", "size": 11, "line": {"width": 0}}},
        ),
        Trace("correlation", "stats", 4, _field("corr"), COLORS["corr"], hover="%{y:.3f}"),
        Trace(
            f"{a} volume",
            "a",
            5,
            _quote_volume,
            COLORS["a"],
            "area",
            hover="%{y:,.0f}",
            legend=False,
        ),
        Trace(
            f"{b} volume",
            "b",
            5,
            _quote_volume,
            COLORS["b"],
            "area",
            hover="%{y:,.0f}",
            legend=False,
        ),
    )


@dataclass(frozen=True)
class FormingTrace:
    """A dotted segment from a line's last closed point to the value of the bar in progress
    (`shared.schemas.Forming`), drawn by the page as the worker publishes it."""

    name: str
    line: int
    """The index in `traces()` of the line it continues."""
    field: str
    """The `Forming` field it shows."""
    row: int
    color: str
    secondary: bool = False


def forming_traces(a: str, b: str) -> tuple[FormingTrace, ...]:
    """After `traces()` in the figure; the page finds them by the layout's `meta.forming`."""
    return (
        FormingTrace(f"{a} forming", 0, "a_close", 1, COLORS["a"]),
        FormingTrace(f"{b} forming", 1, "b_close", 1, COLORS["b"], secondary=True),
        FormingTrace("z-score provisional", 6, "zscore", 3, COLORS["z"]),
    )


def _forming_meta(a: str, b: str) -> dict[str, Any]:
    first = len(traces(a, b))
    return {
        "forming": [
            {"trace": first + i, "line": f.line, "field": f.field}
            for i, f in enumerate(forming_traces(a, b))
        ]
    }


class ChartColumns:
    """The fields of a chart's rows as arrays, each read once however many traces use it."""

    def __init__(self, chart: ChartData) -> None:
        self.chart = chart
        self._read: dict[tuple[str, str], np.ndarray] = {}

    def of(self, role: str) -> Columns:
        rows = self.chart.rows(role)

        def read(name: str) -> np.ndarray:
            key = (role, name)
            if key not in self._read:
                self._read[key] = column(rows, name)
            return self._read[key]

        return read

    def x(self, role: str) -> np.ndarray:
        return self.of(role)("start" if role in ("a", "b") else "ts")

    def z_at(self, ts: int) -> float:
        """The z-score of the statistics of the bar starting at `ts` (0 when there is none)."""
        times = self.x("stats")
        at = int(np.searchsorted(times, ts))
        if at < len(times) and times[at] == ts:
            return float(self.of("stats")("zscore")[at])
        return 0.0


def points(trace: Trace, columns: ChartColumns, k: float) -> Series:
    """x (epoch ms), y and hover text of one trace."""
    if trace.role != "alerts":
        return Series(columns.x(trace.role), trace.y(columns.of(trace.role), k), None)
    alerts = columns.chart.alerts
    x = np.fromiter((alert.ts for alert in alerts), dtype=np.float64, count=len(alerts))
    y = np.fromiter((alert_y(a, columns.z_at) for a in alerts), dtype=np.float64, count=len(alerts))
    texts = [trace.text(alert) for alert in alerts] if trace.text else None
    return Series(x, y, texts)


def _trace_object(trace: Trace, xs: list[int], ys: list[Y], texts: list[str] | None) -> Any:
    common: dict[str, Any] = {
        "name": trace.name,
        "x": xs,
        "y": ys,
        "showlegend": trace.legend,
        "hovertemplate": trace.hover + f"<extra>{trace.name}</extra>",
    }
    if texts is not None:
        common["text"] = texts
    if trace.kind == "area":
        line = {"color": trace.color, "width": 0.6, "shape": "hv"}
        return go.Scatter(mode="lines", line=line, fill="tozeroy", opacity=0.65, **common)
    if trace.kind == "markers":
        marker = {"color": trace.color, **trace.extra.get("marker", {})}
        return go.Scatter(mode="markers", marker=marker, **common)
    line = {"color": trace.color, "width": trace.width, "dash": trace.dash}
    return go.Scatter(mode="lines", line=line, connectgaps=False, **common)


def _grid() -> go.Figure:
    """Five empty rows on one shared time axis; the first has a right axis for leg B."""
    return make_subplots(
        rows=5,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.035,
        row_heights=list(ROW_HEIGHTS),
        subplot_titles=ROW_TITLES,
        specs=[[{"secondary_y": True}], [{}], [{}], [{}], [{}]],
    )


def _add_traces(fig: go.Figure, a: str, b: str) -> None:
    for trace in traces(a, b):
        fig.add_trace(
            _trace_object(trace, [], [], [] if trace.text is not None else None),
            row=trace.row,
            col=1,
            secondary_y=trace.secondary if trace.row == 1 else None,
        )


def _add_forming_traces(fig: go.Figure, a: str, b: str) -> None:
    for forming in forming_traces(a, b):
        fig.add_trace(
            go.Scatter(
                name=forming.name,
                x=[],
                y=[],
                text=[],
                mode="lines+markers",
                line={"color": forming.color, "width": 1.4, "dash": "dot"},
                marker={"color": forming.color, "size": 7, "symbol": "circle-open"},
                showlegend=False,
                hovertemplate="%{text}<extra>provisional</extra>",
            ),
            row=forming.row,
            col=1,
            secondary_y=forming.secondary if forming.row == 1 else None,
        )


def _add_threshold_lines(fig: go.Figure, k: float, colors: dict[str, str]) -> None:
    for level, dash in ((k, "dash"), (-k, "dash"), (0.0, "dot")):
        fig.add_hline(
            y=level,
            row=3,
            col=1,
            line={"color": COLORS["alert"] if level else colors["grid"], "width": 1, "dash": dash},
        )


def _add_empty_messages(fig: go.Figure, empty: dict[int, str], colors: dict[str, str]) -> None:
    for row, message in empty.items():
        fig.add_annotation(
            text=message,
            showarrow=False,
            xref="x domain" if row == 1 else f"x{row} domain",
            yref="y domain" if row == 1 else f"y{row + 1} domain",
            x=0.5,
            y=0.5,
            font={"size": 13, "color": colors["text"]},
            opacity=0.8,
        )


def _style_layout(fig: go.Figure, colors: dict[str, str], uirevision: str) -> None:
    fig.update_layout(
        template=colors["template"],
        paper_bgcolor=colors["paper"],
        plot_bgcolor=colors["paper"],
        font={"color": colors["text"], "size": 12},
        height=820,
        margin={"l": 64, "r": 64, "t": 36, "b": 28},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.012,
            "xanchor": "right",
            "x": 1,
            "font": {"size": 11},
            "bgcolor": "rgba(0,0,0,0)",
        },
        hovermode="x unified",
        barmode="overlay",
        bargap=0,
        uirevision=uirevision,
    )
    for title in fig.layout.annotations[: len(ROW_TITLES)]:
        title.update(x=0, xanchor="left", font={"size": 12, "color": colors["text"]})


def _style_axes(fig: go.Figure, a: str, b: str, colors: dict[str, str]) -> None:
    fig.update_xaxes(
        type="date",
        gridcolor=colors["grid"],
        showspikes=True,
        spikemode="across",
        spikethickness=1,
        spikedash="dot",
    )
    fig.update_yaxes(gridcolor=colors["grid"], zeroline=False, separatethousands=True)
    fig.update_yaxes(
        title_text=a, title_font={"color": COLORS["a"]}, row=1, col=1, secondary_y=False
    )
    fig.update_yaxes(
        title_text=b,
        title_font={"color": COLORS["b"]},
        row=1,
        col=1,
        secondary_y=True,
        showgrid=False,
    )
    fig.update_yaxes(range=[-1.05, 1.05], row=4, col=1)


def encoded(values: np.ndarray) -> Any:
    """A float64 array as plotly.js's typed-array form (`{"dtype": "f8", "bdata": base64}`):
    about a third of its JSON size, and no number formatting on either side."""
    return to_typed_array_spec(np.ascontiguousarray(values, dtype=np.float64))


@functools.lru_cache(maxsize=64)
def _styled(
    a: str, b: str, theme: Theme, k: float, uirevision: str, empty: tuple[tuple[int, str], ...]
) -> bytes:
    """The styled figure without its points, as JSON: Plotly builds and validates it once per
    pair, theme, k and empty rows (that is most of a render's time), not once a render."""
    colors = THEMES[theme]
    fig = _grid()
    _add_traces(fig, a, b)
    _add_forming_traces(fig, a, b)
    _add_threshold_lines(fig, k, colors)
    _add_empty_messages(fig, dict(empty), colors)
    _style_layout(fig, colors, uirevision)
    fig.update_layout(meta=_forming_meta(a, b))
    _style_axes(fig, a, b, colors)
    return orjson.dumps(fig.to_plotly_json(), option=orjson.OPT_SERIALIZE_NUMPY)


def build_figure(
    chart: ChartData,
    *,
    k: float,
    theme: Theme = "dark",
    uirevision: str = "",
    empty: dict[int, str] | None = None,
    screen_points: int | None = None,
    focus: Focus | None = None,
) -> dict[str, Any]:
    """The whole figure as Plotly's JSON form (`data`, `layout`), which `dcc.Graph` takes as is;
    `empty` maps a row (1-5) to the message shown while it has no data; each trace is reduced
    to at most `screen_points` points (None: every point), most of them inside `focus`.

    Line traces carry typed arrays (`encoded`); the few alert markers plain lists, with their
    hover text."""
    spec: dict[str, Any] = orjson.loads(
        _styled(chart.a, chart.b, theme, k, uirevision, tuple(sorted((empty or {}).items())))
    )
    columns = ChartColumns(chart)
    lines = traces(chart.a, chart.b)
    for data, trace in zip(spec["data"][: len(lines)], lines, strict=True):
        xs, ys, texts = points(trace, columns, k).reduced(screen_points, focus)
        if trace.role == "alerts":
            data["x"], data["y"] = xs.tolist(), ys.tolist()
        else:
            data["x"], data["y"] = encoded(xs), encoded(ys)
        if texts is not None:
            data["text"] = texts
    return spec


@dataclass(frozen=True)
class Extension:
    """The points a live step appends to the page's traces (by index in `traces()`), as the
    page's `extend` script (clientside.py) takes them: plain lists, None for a missing value."""

    lines: dict[int, Series]
    marks: dict[int, Series]
    """The alert markers, which carry hover text."""

    def to_store(self) -> dict[str, Any]:

        def part(by_index: dict[int, Series], text: bool) -> dict[str, Any]:
            def values(array: np.ndarray) -> list[float | None]:
                return [None if math.isnan(v) else v for v in array.tolist()]

            body: dict[str, Any] = {
                "traces": list(by_index),
                "x": [s.x.tolist() for s in by_index.values()],
                "y": [values(s.y) for s in by_index.values()],
            }
            if text:
                body["text"] = [s.text or [] for s in by_index.values()]
            return body

        return {
            "lines": part(self.lines, False),
            "marks": part(self.marks, True),
        }


def extension(new: ChartData, k: float) -> Extension:
    """The live update: only the new points of each trace (a few hundred bytes per bar,
    whatever the history on screen)."""
    columns = ChartColumns(new)
    lines: dict[int, Series] = {}
    marks: dict[int, Series] = {}
    for index, trace in enumerate(traces(new.a, new.b)):
        series = points(trace, columns, k)
        if len(series.x):
            (marks if trace.role == "alerts" else lines)[index] = series
    return Extension(lines, marks)
