"""The screener's callback wiring: ids -> reads (`data.read_screener`) -> decisions
(`screener.py`) -> outputs. Only rows that changed travel, as a `Patch` of the table's data."""

from __future__ import annotations

import logging
from typing import Any

import redis
from dash import Dash, Input, Output, Patch, State, ctx, no_update

from services.dashboard import actions, controller, data, ids, screener
from shared.config import Settings
from shared.health import now_ms

log = logging.getLogger(__name__)

SERIES_CONTROLS = (ids.TIMEFRAME, ids.WINDOW, ids.METHOD)
"""The controls that choose the series: timeframe, window, method."""
FILTER_CONTROLS = (ids.SCREENER_CONDITIONS, ids.SCREENER_CONTAINS, ids.THRESHOLD)
"""The controls of the plain filters: conditions, text, the threshold k of `|z| > k`."""


def _opened(pair: tuple[str, str] | None) -> tuple[Any, ...]:
    """The outputs that open `pair` in Live (nothing when there is no pair)."""
    if pair is None:
        return no_update, no_update, no_update
    return "live", pair[0], pair[1]


UPDATED = (
    (ids.SCREENER_TABLE, "data"),
    (ids.SCREENER_HELD, "data"),
    (ids.SCREENER_STATUS, "children"),
    (ids.SCREENER_HEATMAP, "figure"),
)
"""What a screener update sets: the rows (all, or a patch of the changed ones), the digests the
page holds, the status line and the heatmap."""
OPEN_PAIR = (
    Output(ids.MODE, "value", allow_duplicate=True),
    Output(ids.SYMBOL_A, "value", allow_duplicate=True),
    Output(ids.SYMBOL_B, "value", allow_duplicate=True),
)


def register_screener(app: Dash, client: redis.Redis, settings: Settings) -> None:
    legs = settings.pair_legs
    table_rows = screener.TableRows()

    @app.callback(Output(ids.SCREENER_TICK, "disabled"), Input(ids.MODE, "value"))
    def run_while_shown(mode: str | None) -> bool:
        return mode != "screener"

    @app.callback(
        *(Output(component, prop) for component, prop in UPDATED),
        Input(ids.SCREENER_TICK, "n_intervals"),
        Input(ids.MODE, "value"),
        *(Input(control, "value") for control in SERIES_CONTROLS),
        State(ids.SCREENER_HELD, "data"),
        State(ids.THEME, "value"),
    )
    def update_screener(
        _: int | None,
        mode: str | None,
        tf: Any,
        window: Any,
        method: Any,
        held: dict[str, Any] | None,
        theme: str | None,
    ) -> tuple[Any, ...]:
        if mode != "screener":
            return no_update, no_update, no_update, no_update
        try:
            series = screener.Series.of_controls(tf, window, method, settings.window)
        except ValueError as exc:
            return no_update, no_update, str(exc), no_update
        if not legs:
            return [], None, screener.status(0, 0, series, 0, None, now_ms()), no_update
        try:
            for view_id in series.asked(legs, settings.window, settings.max_views):
                actions.keep_view(client, view_id)
            read = data.read_screener(client, series.key(legs, settings.window), series.tf)
        except redis.RedisError as exc:
            return no_update, no_update, f"Redis did not answer: {exc}", no_update
        built = table_rows.build(read.stored, legs, series.tf)
        shown = screener.screen(
            built, read.matrix, series, len(legs), held, theme or "dark", now_ms()
        )
        rows: Any = shown.update.full
        if rows is None:
            rows = Patch() if shown.update.changed else no_update
            for index, row in shown.update.changed.items():
                rows[index] = row
        figure = no_update if shown.heatmap is None else shown.heatmap
        return rows, shown.update.held, shown.status, figure

    @app.callback(
        Output(ids.SCREENER_TABLE, "filter_query"),
        Output(ids.SCREENER_TABLE, "style_data_conditional"),
        *(Input(control, "value") for control in FILTER_CONTROLS),
    )
    def apply_filters(conditions: Any, contains: Any, k: Any) -> tuple[Any, ...]:
        keep = screener.ScreenFilter.of_controls(conditions, contains, k)
        return keep.query(), screener.colours(keep.k)

    @app.callback(*OPEN_PAIR, Input(ids.SCREENER_TABLE, "active_cell"), prevent_initial_call=True)
    def open_row(cell: dict[str, Any] | None) -> tuple[Any, ...]:
        return _opened(screener.row_pair(cell, legs))

    @app.callback(*OPEN_PAIR, Input(ids.SCREENER_HEATMAP, "clickData"), prevent_initial_call=True)
    def open_cell(click: dict[str, Any] | None) -> tuple[Any, ...]:
        points = (click or {}).get("points") or [None]
        return _opened(screener.clicked_pair(points[0], legs))

    @app.callback(
        Output(ids.SCREENER_DOWNLOAD, "data"),
        Output(ids.SCREENER_STATUS, "children", allow_duplicate=True),
        Input(ids.SCREENER_EXPORT, "n_clicks"),
        *(State(control, "value") for control in (*FILTER_CONTROLS, *SERIES_CONTROLS)),
        prevent_initial_call=True,
    )
    def export(clicks: int | None, *controls: Any) -> tuple[Any, ...]:
        conditions, contains, k, tf, window, method = controls
        if not ctx.triggered or not clicks:
            return no_update, no_update
        try:
            series = screener.Series.of_controls(tf, window, method, settings.window)
            read = data.read_screener(client, series.key(legs, settings.window), series.tf)
        except (ValueError, IndexError) as exc:
            return no_update, f"Nothing to export: {exc}"
        except redis.RedisError as exc:
            return no_update, f"Redis did not answer: {exc}"
        keep = screener.ScreenFilter.of_controls(conditions, contains, k)
        built = table_rows.build(read.stored, legs, series.tf)
        file = controller.download(screener.export(built, series, keep))
        return file.file, file.status
