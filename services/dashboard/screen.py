"""The chart callback's reads: what a render or an export of a view reads (Redis, SQLite), handed
to the pure builders (`display.py`, `export.py`). The browser keeps the cursor; the server keeps
only a cache of the parsed newest entries (`recent.py`).
"""

from __future__ import annotations

import secrets
from typing import Any

import redis

from services.dashboard import data, display, export, loaders
from services.dashboard.cursor import LIVE_BATCH, ChartCursor, continues
from services.dashboard.display import Screen
from services.dashboard.figures import Focus
from services.dashboard.recent import RecentEntries
from services.dashboard.records import Snapshot
from services.dashboard.selection import Selection
from shared.config import Settings
from shared.views import PairView


def live_full(
    client: redis.Redis,
    settings: Settings,
    view: Selection,
    recent: RecentEntries | None = None,
    focus: Focus | None = None,
) -> Screen:
    """The newest entries drawn in full; through `recent` (the server's cache of parsed
    entries) when given, else read afresh."""
    pair = view.pair_view()
    if recent is None:
        snap = data.read_recent(client, pair, settings.window, settings.dash_max_points)
    else:
        snap = read_newest(client, settings, pair, recent)
    return display.live_full(settings, view, snap, focus, render=secrets.token_hex(6))


def read_newest(
    client: redis.Redis, settings: Settings, pair: PairView, recent: RecentEntries
) -> Snapshot:
    """The entries a full render of `pair` draws, through the server's cache."""
    return recent.read(client, pair, settings.window, settings.dash_max_points)


def render(
    client: redis.Redis,
    settings: Settings,
    view: Selection,
    cursor: dict[str, Any] | None,
    *,
    full: bool,
    recent: RecentEntries | None = None,
    zoom: dict[str, Any] | None = None,
) -> Screen:
    """The one entry point of the chart callback: in full, or the step after the cursor. A
    full render draws the bars of the range in `zoom` (the zoom store) in most detail."""
    held = ChartCursor.of_view(cursor, view.key)
    focus = display.focus_of(zoom, view.key)
    if view.mode != "live":
        if full or held is None:
            loaded = loaders.load_static(client, settings, view, screen=True)
            return display.static_full(view, loaded, settings.dash_screen_points, focus)
        return Screen()
    if full or held is None:
        return live_full(client, settings, view, recent, focus)
    new = data.read_since(client, view.pair_view(), settings.window, held.ids, LIVE_BATCH)
    if not continues(held, new, settings.dash_screen_points, settings.dash_max_points):
        return live_full(client, settings, view, recent, focus)
    return display.live_step(settings, view, held, new)


def export_csv(
    client: redis.Redis,
    settings: Settings,
    view: Selection,
    cursor: dict[str, Any] | None,
    zoom: dict[str, Any] | None,
) -> export.Export:
    """What is on screen as CSV: the points the browser holds, at full resolution, within the
    zoomed time range when the user zoomed."""
    start, end = export.zoomed_range(zoom, view.key)
    if view.mode == "live":
        held = ChartCursor.of_view(cursor, view.key)
        if held is None:
            raise ValueError("nothing on screen yet")
        pair = view.pair_view()
        snap = data.read_on_screen(client, pair, settings.window, held.ids, held.n)
        return export.export_chart(display.chart_of(pair, snap), start, end, export.BAR_COLUMNS)
    loaded = loaders.load_static(client, settings, view)
    if loaded.error:
        raise ValueError(loaded.error)
    return export.export_chart(loaded.chart, start, end, loaded.bar_columns)
