"""What the chart and the statistics panel show, built from what was read (pure).

- live: the newest `DASH_MAX_POINTS` entries of the view's streams, each trace reduced to
  the points a screen shows (`DASH_SCREEN_POINTS`), then each step appends only the entries
  after the browser's cursor (`cursor.py`), so its cost depends on what is new, not on what is
  on screen or stored;
- history and upload: a `Loaded` data set, drawn once, reduced the same way for display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.dashboard import panels, status
from services.dashboard.cursor import ChartCursor, latest_digest, reduced_to
from services.dashboard.export import zoomed_range
from services.dashboard.figures import ChartData, Focus, build_figure, extension
from services.dashboard.records import (
    ROLES,
    Loaded,
    Snapshot,
    alert_matches,
    latest_stat,
    records_of,
)
from services.dashboard.selection import Selection
from shared.config import Settings
from shared.pairstats import Stationarity
from shared.schemas import Alert, PairStat
from shared.views import PairView


@dataclass
class Screen:
    """The outputs of one render; None means "leave as it is"."""

    figure: Any = None
    step: dict[str, Any] | None = None
    """The points a live step appends (`figures.Extension`), instead of a whole figure."""
    cursor: dict[str, Any] | None = None
    stats: list[Any] | None = None
    status: str | None = None


def newest_adf(stats: Sequence[PairStat], previous: dict[str, float]) -> dict[str, float]:
    """The stationarity fields of the newest statistics that carry them (else `previous`)."""
    found = Stationarity.newest(stats)
    return previous if found is None else found.values()


def _markers(alerts: Sequence[tuple[str, Alert]], view: PairView, since: int | None) -> list[Alert]:
    return [
        alert
        for _, alert in alerts
        if alert_matches(alert, view) and (since is None or alert.ts >= since)
    ]


def _first_time(chart: ChartData) -> int | None:
    firsts = [rows[0].start for rows in (chart.bars_a, chart.bars_b) if rows]
    firsts += [chart.stats[0].ts] if chart.stats else []
    return min(firsts) if firsts else None


def chart_of(pair: PairView, snap: Snapshot, alerts: Sequence[Alert] = ()) -> ChartData:
    return ChartData(
        pair.a,
        pair.b,
        pair.tf,
        records_of(snap.bars_a),
        records_of(snap.bars_b),
        records_of(snap.stats),
        alerts,
    )


def focus_of(zoom: dict[str, Any] | None, key: str) -> Focus | None:
    """The range the user zoomed the view `key` to (the zoom store), if any."""
    start, end = zoomed_range(zoom, key)
    return None if start is None or end is None else Focus(int(start), int(end))


def live_full(
    settings: Settings,
    view: Selection,
    snap: Snapshot,
    focus: Focus | None = None,
    render: str = "",
) -> Screen:
    """Every point of `snap` (the newest entries of each stream) and a new cursor, which the
    figure carries too (`layout.meta.cursor`); `render` tells this full render from the others
    of the view (`cursor.py`)."""
    pair = view.pair_view()
    chart = chart_of(pair, snap)
    chart = replace(chart, alerts=_markers(snap.alerts, pair, _first_time(chart)))
    waiting = status.waiting_for_stats(pair, settings.window)
    empty = status.empty_rows(chart, waiting)
    reduced = reduced_to(settings.dash_screen_points)
    figure = build_figure(
        chart, k=view.k, theme=view.theme, uirevision=view.key, empty=empty,
        screen_points=reduced, focus=focus,
    )  # fmt: skip
    adf = newest_adf(chart.stats, {})
    latest = latest_stat(snap.latest) or (chart.stats[-1] if chart.stats else None)
    counts = {role: chart.count(role) for role in ROLES}
    points = min(max(counts.values()), reduced)
    cursor = ChartCursor(
        view.key, snap.tails, counts, adf, latest_digest(snap.latest), points, render
    )  # fmt: skip
    figure["layout"]["meta"]["cursor"] = cursor.to_store()
    skipped = f"{snap.skipped} malformed entries skipped" if snap.skipped else ""
    return Screen(
        figure=figure,
        cursor=cursor.to_store(),
        stats=panels.stats_panel(latest, adf, tf=pair.tf, k=view.k, waiting=waiting),
        status=status.chart_status(view, counts, settings.dash_max_points, skipped),
    )


def live_step(settings: Settings, view: Selection, cursor: ChartCursor, new: Snapshot) -> Screen:
    """The points after the cursor, to append (`cursor.continues` holds), as a step that names
    the cursor it continues (`base`) and the one it leads to (`cursor`), which the page keeps
    once it has drawn the step; the statistics panel only when the latest statistics or the
    stationarity values changed. Nothing at all when nothing changed."""
    pair = view.pair_view()
    chart = chart_of(pair, new, _markers(new.alerts, pair, None))
    screen = Screen()
    counts = cursor.n
    points = cursor.points
    adf = newest_adf(chart.stats, cursor.adf or {})
    digest = latest_digest(new.latest)
    if any(chart.count(role) for role in ROLES):
        counts = {role: counts.get(role, 0) + chart.count(role) for role in ROLES}
        points += max(chart.count(role) for role in ROLES)
        screen.status = status.chart_status(view, counts, settings.dash_max_points)
    if digest != cursor.latest or adf != cursor.adf:
        latest = latest_stat(new.latest) or (chart.stats[-1] if chart.stats else None)
        if latest is not None:
            screen.stats = panels.stats_panel(latest, adf, tf=pair.tf, k=view.k)
    following = ChartCursor(
        view.key, new.newest_ids(cursor.ids), counts, adf, digest, points, cursor.render
    )
    if following != cursor:
        screen.step = {
            **extension(chart, view.k).to_store(),
            "base": cursor.to_store(),
            "cursor": following.to_store(),
        }
    return screen


def static_full(
    view: Selection, loaded: Loaded, screen_points: int, focus: Focus | None = None
) -> Screen:
    """A history range or an upload, drawn once (each trace reduced to `screen_points`)."""
    chart = loaded.chart
    what = "history range" if view.mode == "history" else "upload"
    waiting = loaded.error or loaded.note or f"No statistics for this {what}"
    empty = status.empty_rows(chart, waiting)
    if loaded.error:
        empty = status.all_rows(loaded.error)
    elif not chart.bars_a and not chart.bars_b:
        empty = status.all_rows(
            f"No {chart.tf} bars of {chart.a} or {chart.b} stored in this range"
        )
    figure = build_figure(
        chart, k=view.k, theme=view.theme, uirevision=view.key, empty=empty,
        screen_points=screen_points, focus=focus,
    )  # fmt: skip
    counts = {role: chart.count(role) for role in ROLES}
    reduced = max(counts.values()) > screen_points
    note = status.static_note(loaded.error or loaded.note, reduced)
    adf = newest_adf(chart.stats, {})
    latest = chart.stats[-1] if chart.stats else None
    points = min(max(counts.values()), screen_points)
    return Screen(
        figure=figure,
        cursor=ChartCursor(view.key, {}, counts, adf, "", points).to_store(),
        stats=panels.stats_panel(latest, adf, tf=chart.tf, k=view.k, waiting=waiting),
        status=status.chart_status(view, counts, screen_points, note, chart),
    )
