"""What the chart and the statistics panel show, built from what was read (pure).

- live: the newest `DASH_MAX_POINTS` entries of the view's streams in full, then each step
  patches in only the entries after the browser's cursor (`cursor.py`), so its cost depends on
  what is new, not on what is on screen or stored;
- history and upload: a `Loaded` data set, drawn once, thinned to `DASH_MAX_POINTS` for display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.dashboard import panels, status
from services.dashboard.cursor import ChartCursor, latest_digest
from services.dashboard.figures import ChartData, build_figure, extend_patch, thin
from services.dashboard.records import ROLES, Loaded, Snapshot, alert_matches, latest_stat
from services.dashboard.selection import Selection
from shared.config import Settings
from shared.pairstats import Stationarity
from shared.schemas import Alert, PairStat
from shared.views import PairView


@dataclass
class Screen:
    """The outputs of one render; None means "leave as it is"."""

    figure: Any = None
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
        [bar for _, bar in snap.bars_a],
        [bar for _, bar in snap.bars_b],
        [stat for _, stat in snap.stats],
        alerts,
    )


def live_full(settings: Settings, view: Selection, snap: Snapshot) -> Screen:
    """Every point of `snap` (the newest entries of each stream) and a new cursor."""
    pair = view.pair_view()
    chart = chart_of(pair, snap)
    chart = replace(chart, alerts=_markers(snap.alerts, pair, _first_time(chart)))
    waiting = status.waiting_for_stats(pair, settings.window)
    empty = status.empty_rows(chart, waiting)
    figure = build_figure(chart, k=view.k, theme=view.theme, uirevision=view.key, empty=empty)
    adf = newest_adf(chart.stats, {})
    latest = latest_stat(snap.latest) or (chart.stats[-1] if chart.stats else None)
    counts = {role: chart.count(role) for role in ROLES}
    cursor = ChartCursor(view.key, snap.tails, counts, adf, latest_digest(snap.latest))
    skipped = f"{snap.skipped} malformed entries skipped" if snap.skipped else ""
    return Screen(
        figure=figure,
        cursor=cursor.to_store(),
        stats=panels.stats_panel(latest, adf, tf=pair.tf, k=view.k, waiting=waiting),
        status=status.chart_status(view, counts, settings.dash_max_points, skipped),
    )


def live_step(settings: Settings, view: Selection, cursor: ChartCursor, new: Snapshot) -> Screen:
    """The Patch of the entries after the cursor (`cursor.continues(cursor, new)` holds); the
    statistics panel only when the latest statistics or the stationarity values changed."""
    pair = view.pair_view()
    chart = chart_of(pair, new, _markers(new.alerts, pair, None))
    screen = Screen()
    counts = cursor.n
    adf = newest_adf(chart.stats, cursor.adf or {})
    digest = latest_digest(new.latest)
    if any(chart.count(role) for role in ROLES):
        screen.figure, counts = extend_patch(chart, counts, settings.dash_max_points, view.k)
        screen.status = status.chart_status(view, counts, settings.dash_max_points)
    if digest != cursor.latest or adf != cursor.adf:
        latest = latest_stat(new.latest) or (chart.stats[-1] if chart.stats else None)
        if latest is not None:
            screen.stats = panels.stats_panel(latest, adf, tf=pair.tf, k=view.k)
    screen.cursor = ChartCursor(
        view.key, new.newest_ids(cursor.ids), counts, adf, digest
    ).to_store()
    return screen


def static_full(view: Selection, loaded: Loaded, cap: int) -> Screen:
    """A history range or an upload, drawn once (thinned to `cap` points for display)."""
    chart = loaded.chart
    shown = ChartData(
        chart.a,
        chart.b,
        chart.tf,
        thin(chart.bars_a, cap),
        thin(chart.bars_b, cap),
        thin(chart.stats, cap),
    )
    what = "history range" if view.mode == "history" else "upload"
    waiting = loaded.error or loaded.note or f"No statistics for this {what}"
    empty = status.empty_rows(shown, waiting)
    if loaded.error:
        empty = status.all_rows(loaded.error)
    elif not chart.bars_a and not chart.bars_b:
        empty = status.all_rows(
            f"No {chart.tf} bars of {chart.a} or {chart.b} stored in this range"
        )
    figure = build_figure(shown, k=view.k, theme=view.theme, uirevision=view.key, empty=empty)
    counts = {role: shown.count(role) for role in ROLES}
    thinned = len(shown.bars_a) < len(chart.bars_a) or len(shown.stats) < len(chart.stats)
    note = status.static_note(loaded.error or loaded.note, thinned)
    adf = newest_adf(chart.stats, {})
    latest = chart.stats[-1] if chart.stats else None
    return Screen(
        figure=figure,
        cursor=ChartCursor(view.key, {}, counts, adf, "").to_store(),
        stats=panels.stats_panel(latest, adf, tf=chart.tf, k=view.k, waiting=waiting),
        status=status.chart_status(view, counts, cap, note, shown),
    )
