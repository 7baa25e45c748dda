"""Callback wiring: ids -> reads (data.py, screen.py) -> decisions (controller.py, rules.py)
-> writes (actions.py) -> outputs.

Each callback only routes; what it decides lives in `controller.py` and `rules.py`, which tests
call directly. Redis errors never blank the page: outputs keep their last value and the status
says what happened.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from dash import ALL, Dash, Input, Output, State, ctx, no_update

from services.dashboard import actions, clientside, controller, data, ids, rules, status, upload
from services.dashboard.controller import FEED_ROWS, AlertsCursor, AlertsUpdate
from services.dashboard.recent import RecentEntries
from services.dashboard.rules import FormFill
from services.dashboard.screen import export_csv, render
from services.dashboard.screener_callbacks import register_screener
from services.dashboard.selection import Selection
from shared.alert_rules import RuleError
from shared.config import Settings
from shared.health import now_ms, stale_after_ms

log = logging.getLogger(__name__)

VIEW_CONTROLS = {
    "mode": Input(ids.MODE, "value"),
    "a": Input(ids.SYMBOL_A, "value"),
    "b": Input(ids.SYMBOL_B, "value"),
    "tf": Input(ids.TIMEFRAME, "value"),
    "window": Input(ids.WINDOW, "value"),
    "method": Input(ids.METHOD, "value"),
    "k": Input(ids.THRESHOLD, "value"),
    "theme": Input(ids.THEME, "value"),
    "upload_token": Input(ids.UPLOAD_TOKEN, "data"),
    "preset": State(ids.HISTORY_PRESET, "value"),
    "start": State(ids.HISTORY_FROM, "value"),
    "end": State(ids.HISTORY_TO, "value"),
}
"""The inputs behind `controller.ViewControls`, by its field names."""
RULE_FORM = {name: State(component, "value") for name, component in ids.RULE_FORM.items()}


ANSWERED: dict[str, Any] = {}
"""The step store of an answer with nothing to append: the page's `extend` script runs after
every answer of the chart callback, drawn or not, and sends on the pushed news held meanwhile
(clientside.EXTEND_JS, CHART_BUSY_JS)."""


def _unchanged(*values: Any) -> tuple[Any, ...]:
    return tuple(no_update if value is None else value for value in values)


def _clicked() -> bool:
    """False for the call Dash makes when a pattern-matched button appears (n_clicks None)."""
    return bool(ctx.triggered and ctx.triggered[0].get("value"))


def _alerts(update: AlertsUpdate | None) -> tuple[Any, ...]:
    if update is None:
        return no_update, no_update, no_update
    return _unchanged(update.feed, update.toast, update.cursor.to_store())


def _form(fill: FormFill) -> tuple[Any, ...]:
    return (*(fill.values.get(name, no_update) for name in ids.RULE_FORM), fill.note)


def register_callbacks(
    app: Dash, client: redis.Redis, settings: Settings, recent: RecentEntries
) -> None:
    _view_callbacks(app, client, settings)
    _chart_callbacks(app, client, settings, recent)
    _chart_action_callbacks(app, client, settings)
    _health_callbacks(app, client, settings)
    _rule_callbacks(app, client, settings)
    _upload_callbacks(app, client, settings)
    register_screener(app, client, settings)


def _view_callbacks(app: Dash, client: redis.Redis, settings: Settings) -> None:
    @app.callback(
        Output(ids.ROOT, "className"), Input(ids.THEME, "value"), Input(ids.MODE, "value")
    )
    def apply_theme(theme: str | None, mode: str | None) -> str:
        return controller.theme_class(theme, mode)

    @app.callback(
        output=[
            Output(ids.VIEW, "data"),
            Output(ids.CONTROL_ERROR, "children"),
            Output(ids.HISTORY_SPAN, "children"),
        ],
        inputs={"load": Input(ids.HISTORY_LOAD, "n_clicks"), "chosen": VIEW_CONTROLS},
    )
    def choose_view(load: int | None, chosen: dict[str, Any]) -> tuple[Any, ...]:
        controls = controller.ViewControls(**chosen)
        spans = None
        if controls.mode == "history":
            symbols = [controls.a, controls.b] if controls.a and controls.b else []
            spans = data.read_history_span(settings.sqlite_path, symbols)
        choice = controller.choose_view(controls, spans, now_ms())
        if choice.live_view_id:
            actions.keep_view(client, choice.live_view_id)
        return _unchanged(choice.store, choice.error, choice.span_text)

    @app.callback(
        Output(ids.PAUSED, "data"),
        Output(ids.LIVE_TOGGLE, "children"),
        Input(ids.LIVE_TOGGLE, "n_clicks"),
        State(ids.PAUSED, "data"),
        prevent_initial_call=True,
    )
    def toggle_live(_: int, paused: bool | None) -> tuple[bool, str]:
        pause = controller.toggle_pause(paused)
        return pause.paused, pause.label


def _chart_callbacks(
    app: Dash, client: redis.Redis, settings: Settings, recent: RecentEntries
) -> None:
    if settings.dash_push_max_clients:
        app.clientside_callback(  # type: ignore[no-untyped-call]
            clientside.push_js(settings.dash_update_ms),
            Output(ids.PUSH_STATE, "data"),
            Input(ids.VIEW, "data"),
            Input(ids.PAUSED, "data"),
        )
    app.clientside_callback(  # type: ignore[no-untyped-call]
        clientside.CHART_BUSY_JS,
        Output(ids.PUSH_TICK, "data"),
        Input(ids.CHART_BUSY, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # type: ignore[no-untyped-call]
        clientside.EXTEND_JS,
        Output(ids.CURSOR, "data", allow_duplicate=True),
        Output(ids.CHART_STEP_DRAWN, "data"),
        Input(ids.CHART_STEP, "data"),
        State(ids.PAUSED, "data"),
        State(ids.CURSOR, "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.GRAPH, "figure"),
        Output(ids.CHART_STEP, "data"),
        Output(ids.CURSOR, "data"),
        Output(ids.STATS, "children"),
        Output(ids.CHART_STATUS, "children"),
        Input(ids.LIVE_TICK, "n_intervals"),
        Input(ids.VIEW, "data"),
        Input(ids.PAUSED, "data"),
        Input(ids.ZOOM, "data"),
        Input(ids.PUSH_TICK, "data"),
        State(ids.CURSOR, "data"),
        running=[
            (Output(ids.LIVE_TICK, "disabled"), True, False),
            (Output(ids.CHART_BUSY, "data"), True, False),
        ],
    )
    def update_chart(
        _: int | None, stored: Any, paused: bool | None, zoom: Any, __: Any, cursor: Any
    ) -> tuple[Any, ...]:
        plan = controller.plan_chart(stored, paused, ctx.triggered_id)
        if plan.view is None:
            return _unchanged(None, ANSWERED, None, None, plan.status)
        try:
            shown = render(
                client, settings, plan.view, cursor, full=plan.full, recent=recent, zoom=zoom
            )
        except redis.RedisError as exc:
            return _unchanged(None, ANSWERED, None, None, status.redis_unreachable(exc))
        except Exception as exc:  # the chart keeps its last state; the next tick retries
            log.exception("chart update failed")
            return no_update, ANSWERED, None, no_update, status.update_failed(exc)
        step = shown.step or ANSWERED
        return _unchanged(shown.figure, step, shown.cursor, shown.stats, shown.status)


def _chart_action_callbacks(app: Dash, client: redis.Redis, settings: Settings) -> None:
    """What a zoom, the ADF button and the export button do to the chart's view."""
    app.clientside_callback(  # type: ignore[no-untyped-call]
        clientside.ZOOM_FILTER_JS,
        Output(ids.ZOOM_EVENT, "data"),
        Input(ids.GRAPH, "relayoutData"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.ZOOM, "data"),
        Input(ids.ZOOM_EVENT, "data"),
        State(ids.VIEW, "data"),
        prevent_initial_call=True,
    )
    def remember_zoom(relayout: dict[str, Any] | None, stored: Any) -> Any:
        change = controller.zoom_change(relayout, stored)
        return no_update if change is None else change.store

    @app.callback(
        Output(ids.ADF_STATUS, "children"),
        Input(ids.ADF_BUTTON, "n_clicks"),
        State(ids.VIEW, "data"),
        prevent_initial_call=True,
    )
    def run_adf(_: int, stored: Any) -> str:
        target = controller.adf_target(stored)
        if target.view_id is None:
            return target.refusal
        try:
            actions.request_adf(client, target.view_id)
        except redis.RedisError as exc:
            return controller.adf_not_sent(exc)
        return controller.adf_requested(target.view_id, now_ms())

    @app.callback(
        Output(ids.EXPORT_DOWNLOAD, "data"),
        Output(ids.EXPORT_STATUS, "children"),
        Input(ids.EXPORT_BUTTON, "n_clicks"),
        State(ids.VIEW, "data"),
        State(ids.CURSOR, "data"),
        State(ids.ZOOM, "data"),
        prevent_initial_call=True,
    )
    def download_csv(_: int, stored: Any, cursor: Any, zoom: Any) -> tuple[Any, ...]:
        try:
            export = export_csv(client, settings, Selection.from_store(stored), cursor, zoom)
        except ValueError as exc:
            return no_update, controller.nothing_exported(exc)
        except redis.RedisError as exc:
            return no_update, controller.nothing_exported_redis(exc)
        file = controller.download(export)
        return file.file, file.status


def _health_callbacks(app: Dash, client: redis.Redis, settings: Settings) -> None:
    stale_after = stale_after_ms(settings.health_interval_s)

    @app.callback(
        Output(ids.HEALTH_BAR, "children"),
        Output(ids.REDIS_STATUS, "children"),
        Output(ids.BANNER, "children"),
        Output(ids.EVENTS, "children"),
        Output(ids.FEED_SAMPLE, "data"),
        Input(ids.HEALTH_TICK, "n_intervals"),
        State(ids.FEED_SAMPLE, "data"),
        State(ids.VIEW, "data"),
    )
    def update_health(_: int | None, sample: Any, stored: Any) -> tuple[Any, ...]:
        health = data.read_health(client, settings.symbols, stale_after_ms=stale_after)
        shown = controller.health_view(health, sample, stored)
        if shown.live_view_id:
            actions.keep_view(client, shown.live_view_id)
        return _unchanged(shown.chips, shown.redis_text, shown.banner, shown.events, shown.sample)

    @app.callback(
        Output(ids.ALERTS_FEED, "children"),
        Output(ids.TOAST, "children"),
        Output(ids.ALERTS_CURSOR, "data"),
        Input(ids.HEALTH_TICK, "n_intervals"),
        Input(ids.ALERTS_PUSHED, "data"),
        State(ids.ALERTS_CURSOR, "data"),
    )
    def update_alerts(_: int | None, __: Any, stored: dict[str, Any] | None) -> tuple[Any, ...]:
        try:
            if not stored:
                return _alerts(controller.first_alerts(data.read_alerts(client, FEED_ROWS)))
            cursor = AlertsCursor.from_store(stored)
            fresh = data.read_alerts_after(client, cursor.id, FEED_ROWS)
        except redis.RedisError:
            return no_update, no_update, no_update
        return _alerts(controller.next_alerts(cursor, fresh))


def _rule_callbacks(app: Dash, client: redis.Redis, settings: Settings) -> None:
    @app.callback(
        Output(ids.RULES_TABLE, "children"),
        Output(ids.RULES_DIGEST, "data"),
        Input(ids.HEALTH_TICK, "n_intervals"),
        State(ids.RULES_DIGEST, "data"),
    )
    def refresh_rules(_: int | None, digest: str | None) -> tuple[Any, ...]:
        try:
            rows = data.read_rules(client)
        except redis.RedisError:
            return no_update, no_update
        shown = rules.rules_refresh(rows, digest, settings.window)
        return (no_update, no_update) if shown is None else (shown.table, shown.digest)

    @app.callback(
        output=[
            Output(ids.RULES_TABLE, "children", allow_duplicate=True),
            Output(ids.RULES_DIGEST, "data", allow_duplicate=True),
            Output(ids.RULE_STATUS, "children"),
        ],
        inputs={
            "clicks": [
                Input(ids.RULE_SAVE, "n_clicks"),
                Input(ids.ALERT_AT_K, "n_clicks"),
                Input({"type": ids.RULE_TOGGLE, "rule": ALL}, "n_clicks"),
                Input({"type": ids.RULE_DELETE, "rule": ALL}, "n_clicks"),
            ],
            "form": RULE_FORM,
            "stored": State(ids.VIEW, "data"),
        },
        prevent_initial_call=True,
    )
    def change_rules(clicks: list[Any], form: dict[str, Any], stored: Any) -> tuple[Any, ...]:
        if not _clicked():
            return no_update, no_update, no_update
        try:
            command = rules.rule_command(ctx.triggered_id, form, stored, settings.window)
            done = actions.run_rule_command(client, command)
            rows = data.read_rules(client)
        except (RuleError, ValueError) as exc:
            return no_update, no_update, rules.rule_refused(exc)
        except redis.RedisError as exc:
            return no_update, no_update, rules.rule_not_written(exc)
        shown = rules.rules_view(rows, settings.window)
        return shown.table, shown.digest, rules.rule_done(command, done)

    @app.callback(
        *(Output(state.component_id, "value") for state in RULE_FORM.values()),
        Output(ids.RULE_STATUS, "children", allow_duplicate=True),
        Input({"type": ids.RULE_EDIT, "rule": ALL}, "n_clicks"),
        Input(ids.RULE_CLEAR, "n_clicks"),
        prevent_initial_call=True,
    )
    def fill_rule_form(*_: Any) -> tuple[Any, ...]:
        if not _clicked():
            return tuple(no_update for _ in range(len(RULE_FORM) + 1))
        if ctx.triggered_id == ids.RULE_CLEAR:
            return _form(rules.cleared_form())
        rule_id = str(ctx.triggered_id["rule"])
        try:
            raw = data.read_rule(client, rule_id)
        except redis.RedisError as exc:
            return _form(rules.form_not_loaded(exc))
        return _form(rules.edit_form(rule_id, raw))


def _upload_callbacks(app: Dash, client: redis.Redis, settings: Settings) -> None:
    app.clientside_callback(  # type: ignore[no-untyped-call]
        clientside.UPLOAD_CHECK_JS,
        Output(ids.UPLOAD_ACCEPTED, "data"),
        Output(ids.UPLOAD_STATUS, "children"),
        Input(ids.UPLOAD, "contents"),
        State(ids.UPLOAD, "filename"),
        State(ids.CONFIG, "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.UPLOAD_TOKEN, "data"),
        Output(ids.UPLOAD_STATUS, "children", allow_duplicate=True),
        Output(ids.MODE, "value"),
        Output(ids.UPLOAD, "contents"),
        Input(ids.UPLOAD_ACCEPTED, "data"),
        prevent_initial_call=True,
    )
    def accept_upload(accepted: dict[str, Any] | None) -> tuple[Any, ...]:
        if not accepted:
            return no_update, no_update, no_update, no_update
        try:
            pair = controller.read_upload(accepted, settings.dash_upload_max_mb)
            token = actions.store_upload(client, pair)
        except upload.UploadError as exc:
            return no_update, controller.upload_refused(exc), no_update, None
        except redis.RedisError as exc:
            return no_update, controller.upload_not_stored(exc), no_update, None
        except Exception as exc:  # the status must not stay at "Reading ..."
            log.exception("upload not read")
            return no_update, controller.upload_unreadable(exc), no_update, None
        return token, controller.upload_loaded(pair), "upload", None
