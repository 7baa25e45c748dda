"""The chart: pure functions from records to a Plotly figure, and to the Patch of a live update.

One figure, five rows on one shared time axis (zoom or pan any row and all follow):
prices (A left axis, B right axis), spread with mean and +/- k standard deviations, z-score with
the +/- k threshold lines and markers where alerts fired, rolling correlation, and volume in quote
currency (so both legs share an axis). The bands use the same k as the threshold lines: the spread
crosses a band exactly when the z-score crosses a threshold line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import plotly.graph_objects as go
from dash import Patch
from plotly.subplots import make_subplots

from services.dashboard.formatting import fmt_number
from shared.schemas import Alert, Bar, PairStat

Role = Literal["a", "b", "stats", "alerts"]
Theme = Literal["dark", "light"]
Y = float | None
Series = tuple[list[int], list[Y], list[str] | None]
"""One trace's x (epoch ms), y and hover text."""

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


@dataclass(frozen=True)
class ChartData:
    """What one chart shows: both legs' bars, the pair statistics and the alerts that fired."""

    a: str
    b: str
    tf: str
    bars_a: Sequence[Bar] = ()
    bars_b: Sequence[Bar] = ()
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
    y: Callable[[Any, float], Y]
    color: str
    kind: Literal["line", "markers", "bar"] = "line"
    secondary: bool = False
    dash: str = "solid"
    width: float = 1.4
    hover: str = "%{y:,.6g}"
    text: Callable[[Any], str] | None = None
    legend: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _band(sign: int) -> Callable[[Any, float], Y]:
    def y(stat: PairStat, k: float) -> Y:
        return stat.spread_mean + sign * k * stat.spread_std

    return y


def _alert_text(alert: Alert) -> str:
    return (
        f"{alert.rule}: {alert.metric} {fmt_number(alert.value)} "
        f"(threshold {fmt_number(alert.threshold)})<br>{alert.message}"
    )


def traces(a: str, b: str) -> tuple[Trace, ...]:
    """The figure's traces in order; a Patch addresses them by this index."""
    return (
        Trace(a, "a", 1, lambda bar, k: bar.close, COLORS["a"], hover="%{y:,.2f}"),
        Trace(b, "b", 1, lambda bar, k: bar.close, COLORS["b"], secondary=True, hover="%{y:,.2f}"),
        Trace("spread", "stats", 2, lambda s, k: s.spread, COLORS["spread"]),
        Trace("mean", "stats", 2, lambda s, k: s.spread_mean, COLORS["mean"], dash="dash", width=1),
        Trace("+k·σ", "stats", 2, _band(1), COLORS["band"], dash="dot", width=1, legend=False),
        Trace("−k·σ", "stats", 2, _band(-1), COLORS["band"], dash="dot", width=1, legend=False),
        Trace("z-score", "stats", 3, lambda s, k: s.zscore, COLORS["z"], hover="%{y:.2f}"),
        Trace(
            "alert",
            "alerts",
            3,
            lambda alert, k: alert.value if alert.metric == "zscore" else None,
            COLORS["alert"],
            kind="markers",
            text=_alert_text,
            hover="%{text}",
            extra={"marker": {"symbol": "triangle-down", "size": 11, "line": {"width": 0}}},
        ),
        Trace("correlation", "stats", 4, lambda s, k: s.corr, COLORS["corr"], hover="%{y:.3f}"),
        Trace(
            f"{a} volume",
            "a",
            5,
            lambda bar, k: bar.volume * bar.close,
            COLORS["a"],
            "bar",
            hover="%{y:,.0f}",
            legend=False,
        ),
        Trace(
            f"{b} volume",
            "b",
            5,
            lambda bar, k: bar.volume * bar.close,
            COLORS["b"],
            "bar",
            hover="%{y:,.0f}",
            legend=False,
        ),
    )


def _x(role: Role, row: Any) -> int:
    if role in ("a", "b"):
        return int(row.start)
    return int(row.ts)


def points(trace: Trace, chart: ChartData, k: float, z_at: dict[int, float]) -> Series:
    """x (epoch ms), y and hover text of one trace. An alert on another metric than the z-score
    is marked at the z-score of its bar (0 when that bar is not on screen)."""
    rows = chart.rows(trace.role)
    xs = [_x(trace.role, row) for row in rows]
    ys = [trace.y(row, k) for row in rows]
    if trace.role == "alerts":
        ys = [z_at.get(x, 0.0) if y is None else y for x, y in zip(xs, ys, strict=True)]
    texts = [trace.text(row) for row in rows] if trace.text else None
    return xs, ys, texts


def thin(rows: Sequence[Any], cap: int) -> Sequence[Any]:
    """At most `cap` rows, evenly strided, always keeping the newest (display only: export and
    statistics use every row)."""
    if len(rows) <= cap:
        return rows
    step = -(-len(rows) // cap)
    start = (len(rows) - 1) % step
    return rows[start::step]


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
    if trace.kind == "bar":
        return go.Bar(marker={"color": trace.color, "line": {"width": 0}}, opacity=0.65, **common)
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


def _add_traces(fig: go.Figure, chart: ChartData, series: Sequence[Series]) -> None:
    for trace, (_, _, texts) in zip(traces(chart.a, chart.b), series, strict=True):
        fig.add_trace(
            _trace_object(trace, [], [], [] if texts is not None else None),
            row=trace.row,
            col=1,
            secondary_y=trace.secondary if trace.row == 1 else None,
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


def _style_axes(fig: go.Figure, chart: ChartData, colors: dict[str, str]) -> None:
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
        title_text=chart.a, title_font={"color": COLORS["a"]}, row=1, col=1, secondary_y=False
    )
    fig.update_yaxes(
        title_text=chart.b,
        title_font={"color": COLORS["b"]},
        row=1,
        col=1,
        secondary_y=True,
        showgrid=False,
    )
    fig.update_yaxes(range=[-1.05, 1.05], row=4, col=1)


def _with_points(fig: go.Figure, series: Sequence[Series]) -> dict[str, Any]:
    """Plotly validated the styled, empty figure; the arrays go into its plain form afterwards
    (validating or copying 100,000 values one by one takes a second) and stay plain lists,
    which live Patches can extend (numpy arrays would be sent as base64 blobs)."""
    spec: dict[str, Any] = fig.to_plotly_json()
    for data, (xs, ys, texts) in zip(spec["data"], series, strict=True):
        data["x"], data["y"] = xs, ys
        if texts is not None:
            data["text"] = texts
    return spec


def build_figure(
    chart: ChartData,
    *,
    k: float,
    theme: Theme = "dark",
    uirevision: str = "",
    empty: dict[int, str] | None = None,
) -> dict[str, Any]:
    """The whole figure as Plotly's JSON form (`data`, `layout`), which `dcc.Graph` takes as is;
    `empty` maps a row (1-5) to the message shown while it has no data."""
    colors = THEMES[theme]
    fig = _grid()
    z_at = {s.ts: s.zscore for s in chart.stats}
    series = [points(trace, chart, k, z_at) for trace in traces(chart.a, chart.b)]
    _add_traces(fig, chart, series)
    _add_threshold_lines(fig, k, colors)
    _add_empty_messages(fig, empty or {}, colors)
    _style_layout(fig, colors, uirevision)
    _style_axes(fig, chart, colors)
    return _with_points(fig, series)


def extend_patch(
    new: ChartData, on_screen: dict[str, int], cap: int, k: float
) -> tuple[Patch, dict[str, int]]:
    """The live update: append the new points to each trace and drop the oldest beyond `cap`.

    `on_screen` is how many points each role has in the browser; the new counts are returned.
    Only the new points travel (a few hundred bytes per bar), whatever the history on screen.
    """
    patch = Patch()
    z_at = {s.ts: s.zscore for s in new.stats}
    counts = dict(on_screen)
    drop: dict[str, int] = {}
    for role in ("a", "b", "stats", "alerts"):
        added = new.count(role)
        total = counts.get(role, 0) + added
        drop[role] = max(0, total - cap) if added else 0
        counts[role] = total - drop[role]
    for index, trace in enumerate(traces(new.a, new.b)):
        xs, ys, texts = points(trace, new, k, z_at)
        if not xs:
            continue
        target = patch["data"][index]
        target["x"].extend(xs)
        target["y"].extend(ys)
        if texts is not None:
            target["text"].extend(texts)
        for _ in range(drop[trace.role]):
            del target["x"][0]
            del target["y"][0]
            if texts is not None:
                del target["text"][0]
    return patch, counts
