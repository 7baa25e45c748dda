"""Callback wiring: ids -> reads (data.py, screen.py) -> components (panels.py, figures.py).

Each callback only routes; the logic lives in modules that tests call directly. Redis errors
never blank the page: outputs keep their last value and the status line says what happened.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import orjson
import redis
from dash import ALL, Dash, Input, Output, Patch, State, ctx, html, no_update

from services.dashboard import actions, controls, data, forms, ids, panels, records, upload
from services.dashboard.formatting import clock_utc, short_utc
from services.dashboard.screen import export_csv, render
from services.dashboard.selection import Selection
from shared import keys
from shared.alert_rules import DEFAULT_COOLDOWN_TEXT, RuleError
from shared.config import Settings
from shared.health import now_ms, stale_after_ms

log = logging.getLogger(__name__)

FEED_ROWS = 50
UPLOAD_CHECK_JS = """
function(contents, names, config) {
    const none = window.dash_clientside.no_update;
    if (!contents) { return [none, none]; }
    const list = Array.isArray(contents) ? contents : [contents];
    const files = Array.isArray(names) ? names : [names];
    const limit = config.max_upload_bytes;
    for (let i = 0; i < list.length; i++) {
        const size = Math.floor((list[i].length - list[i].indexOf(",") - 1) * 3 / 4);
        if (size > limit) {
            const mb = (size / 1048576).toFixed(1);
            const cap = (limit / 1048576).toFixed(0);
            return [null, files[i] + " is " + mb + " MB; files over " + cap +
                    " MB are refused (split it, or use a larger timeframe)"];
        }
    }
    return [{names: files, contents: list}, "Reading " + files.join(", ") + "…"];
}
"""


def _message(text: str, tone: str = "") -> html.Div:
    return html.Div(text, className=f"message {tone}".strip())


def _unchanged(*values: Any) -> tuple[Any, ...]:
    return tuple(no_update if value is None else value for value in values)


def register_callbacks(app: Dash, client: redis.Redis, settings: Settings) -> None:
    stale_after = stale_after_ms(settings.health_interval_s)

    @app.callback(Output(ids.ROOT, "className"), Input(ids.THEME, "value"))
    def apply_theme(theme: str | None) -> str:
        return f"app theme-{'light' if theme == 'light' else 'dark'}"

    @app.callback(
        Output(ids.VIEW, "data"),
        Output(ids.CONTROL_ERROR, "children"),
        Output(ids.HISTORY_SPAN, "children"),
        Input(ids.MODE, "value"),
        Input(ids.SYMBOL_A, "value"),
        Input(ids.SYMBOL_B, "value"),
        Input(ids.TIMEFRAME, "value"),
        Input(ids.WINDOW, "value"),
        Input(ids.METHOD, "value"),
        Input(ids.THRESHOLD, "value"),
        Input(ids.THEME, "value"),
        Input(ids.HISTORY_LOAD, "n_clicks"),
        Input(ids.UPLOAD_TOKEN, "data"),
        State(ids.HISTORY_PRESET, "value"),
        State(ids.HISTORY_FROM, "value"),
        State(ids.HISTORY_TO, "value"),
    )
    def choose_view(
        mode: str,
        a: str,
        b: str,
        tf: str,
        window: Any,
        method: str,
        k: Any,
        theme: str,
        _load: int,
        token: str | None,
        preset: str,
        start: str | None,
        end: str | None,
    ) -> tuple[Any, ...]:
        span_text: Any = no_update
        try:
            history = None
            if mode == "history":
                spans = data.read_history_span(settings.sqlite_path, [a, b] if a and b else [])
                stored = [s for s in spans.values() if s]
                span = (min(s[0] for s in stored), max(s[1] for s in stored)) if stored else None
                span_text = (
                    f"Stored: {short_utc(span[0])} to {short_utc(span[1])} UTC"
                    if span
                    else "No ticks stored yet."
                )
                history = controls.resolve_range(preset, start, end, now_ms(), span)
            if mode == "upload" and not token:
                raise ValueError("upload a CSV file first (below), then pick Upload")
            view = controls.view_from_controls(
                mode=mode,
                a=a,
                b=b,
                tf=tf,
                window=window,
                method=method,
                k=k,
                theme=theme,
                history=history,
                upload=token or "",
            )
        except ValueError as exc:
            return no_update, str(exc), span_text
        if view.mode == "live":
            try:
                actions.register_view(client, view.pair_view().id)
            except redis.RedisError:
                pass  # the health bar says Redis is down; the renewal retries every second
        return view.to_store(), "", span_text

    @app.callback(
        Output(ids.PAUSED, "data"),
        Output(ids.LIVE_TOGGLE, "children"),
        Input(ids.LIVE_TOGGLE, "n_clicks"),
        State(ids.PAUSED, "data"),
        prevent_initial_call=True,
    )
    def toggle_live(_: int, paused: bool | None) -> tuple[bool, str]:
        return (not paused), ("Resume" if not paused else "Pause")

    @app.callback(
        Output(ids.GRAPH, "figure"),
        Output(ids.CURSOR, "data"),
        Output(ids.STATS, "children"),
        Output(ids.CHART_STATUS, "children"),
        Input(ids.LIVE_TICK, "n_intervals"),
        Input(ids.VIEW, "data"),
        Input(ids.PAUSED, "data"),
        State(ids.CURSOR, "data"),
        running=[(Output(ids.LIVE_TICK, "disabled"), True, False)],
    )
    def update_chart(
        _: int | None, stored: Any, paused: bool | None, cursor: dict[str, Any] | None
    ) -> tuple[Any, ...]:
        try:
            view = Selection.from_store(stored)
        except (ValueError, TypeError):
            return no_update, no_update, no_update, no_update
        trigger = ctx.triggered_id
        if paused and trigger in (ids.PAUSED, ids.LIVE_TICK):
            # Said on every tick, so an update that was in flight when Pause was pressed
            # cannot leave the status saying "Live".
            return no_update, no_update, no_update, "Paused: press Resume for live updates"
        full = trigger in (None, ids.VIEW) or trigger == ids.PAUSED
        try:
            screen = render(client, settings, view, cursor, full=full)
        except redis.RedisError as exc:
            status = f"Redis unreachable ({exc}); showing the last data received"
            return no_update, no_update, no_update, status
        except Exception as exc:  # the chart keeps its last state; the next tick retries
            log.exception("chart update failed")
            return no_update, None, no_update, f"Update failed ({exc}); retrying"
        return _unchanged(screen.figure, screen.cursor, screen.stats, screen.status)

    @app.callback(
        Output(ids.ZOOM, "data"),
        Input(ids.GRAPH, "relayoutData"),
        State(ids.VIEW, "data"),
        prevent_initial_call=True,
    )
    def remember_zoom(relayout: dict[str, Any] | None, stored: Any) -> Any:
        zoom = controls.zoom_from_relayout(relayout)
        if zoom is None:
            return no_update
        key = Selection.from_store(stored).key if stored else ""
        if zoom == "reset":
            return None
        return {"key": key, "start": zoom[0], "end": zoom[1]}

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
        rates = panels.tick_rates(health.feeds, sample, health.at_ms)
        chips, redis_text, banner = panels.health_bar(health, rates)
        if not health.redis_ok:
            return chips, redis_text, banner, no_update, no_update
        if isinstance(stored, dict) and stored.get("mode") == "live":
            try:
                actions.register_view(client, Selection.from_store(stored).pair_view().id)
            except (ValueError, redis.RedisError):
                pass
        events = panels.events_list(health.events, health.at_ms)
        return chips, redis_text, banner, events, panels.feed_sample(health)

    @app.callback(
        Output(ids.ALERTS_FEED, "children"),
        Output(ids.TOAST, "children"),
        Output(ids.ALERTS_CURSOR, "data"),
        Input(ids.HEALTH_TICK, "n_intervals"),
        State(ids.ALERTS_CURSOR, "data"),
    )
    def update_alerts(_: int | None, cursor: dict[str, Any] | None) -> tuple[Any, ...]:
        try:
            if not cursor:
                recent = data.read_alerts(client, FEED_ROWS)
                newest = recent[0][0] if recent else records.START
                rows = panels.alerts_feed([alert for _, alert in recent])
                return rows, no_update, {"id": newest, "n": len(recent), "serial": 0}
            fresh = data.read_alerts_after(client, cursor["id"], FEED_ROWS)
        except redis.RedisError:
            return no_update, no_update, no_update
        if not fresh:
            return no_update, no_update, no_update
        feed: Any
        if cursor["n"] == 0:  # the table holds only its "no alert yet" row: replace it
            feed = panels.alerts_feed([alert for _entry, alert in reversed(fresh)])
            length = len(fresh)
        else:
            feed = Patch()
            for _entry, alert in fresh:
                feed.prepend(panels.alert_row(alert))
            length = cursor["n"] + len(fresh)
            while length > FEED_ROWS:
                length -= 1
                del feed[length]
        serial = cursor["serial"] + 1
        toast = panels.toast(fresh[-1][1], serial)
        return feed, toast, {"id": fresh[-1][0], "n": length, "serial": serial}

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
        new = _rules_digest(rows)
        if new == digest:
            return no_update, no_update
        return panels.rules_table(rows, settings.window), new

    rule_form = [
        State(ids.RULE_ID, "value"),
        State(ids.RULE_NAME, "value"),
        State(ids.RULE_PAIR, "value"),
        State(ids.RULE_TF, "value"),
        State(ids.RULE_METRIC, "value"),
        State(ids.RULE_OP, "value"),
        State(ids.RULE_THRESHOLD, "value"),
        State(ids.RULE_COOLDOWN, "value"),
        State(ids.RULE_WINDOW, "value"),
        State(ids.RULE_METHOD, "value"),
        State(ids.RULE_CONDITIONS, "value"),
        State(ids.RULE_ENABLED, "value"),
    ]
    form_names = (
        "id",
        "name",
        "pair",
        "tf",
        "metric",
        "op",
        "threshold",
        "cooldown_s",
        "window",
        "method",
        "conditions",
        "enabled",
    )

    @app.callback(
        Output(ids.RULES_TABLE, "children", allow_duplicate=True),
        Output(ids.RULES_DIGEST, "data", allow_duplicate=True),
        Output(ids.RULE_STATUS, "children"),
        Input(ids.RULE_SAVE, "n_clicks"),
        Input(ids.ALERT_AT_K, "n_clicks"),
        Input({"type": ids.RULE_TOGGLE, "rule": ALL}, "n_clicks"),
        Input({"type": ids.RULE_DELETE, "rule": ALL}, "n_clicks"),
        *rule_form,
        State(ids.VIEW, "data"),
        prevent_initial_call=True,
    )
    def change_rules(*args: Any) -> tuple[Any, ...]:
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            return no_update, no_update, no_update
        form = dict(zip(form_names, args[4:16], strict=True))
        form["enabled"] = bool(form["enabled"])
        stored = args[16]
        trigger = ctx.triggered_id
        try:
            if trigger == ids.RULE_SAVE:
                rule_id, fields = forms.rule_from_form(form)
                rule = actions.save_rule(client, rule_id, fields)
                message = _message(f"Saved rule {rule_id}: {panels.condition_text(rule)}", "ok")
            elif trigger == ids.ALERT_AT_K:
                view = Selection.from_store(stored).pair_view()
                k = Selection.from_store(stored).k
                rule_id, fields = forms.threshold_rule(
                    f"{view.a}-{view.b}", view.tf, k, view.window, view.method, settings.window
                )
                rule = actions.save_rule(client, rule_id, fields)
                message = _message(f"Saved rule {rule_id}: {panels.condition_text(rule)}", "ok")
            elif trigger["type"] == ids.RULE_TOGGLE:
                current = {row.rule_id: row for row in data.read_rules(client)}
                row = current.get(trigger["rule"])
                enable = not (row and row.rule and row.rule.enabled)
                actions.set_rule_enabled(client, trigger["rule"], enable)
                message = _message(f"Rule {trigger['rule']} {'enabled' if enable else 'disabled'}")
            elif actions.delete_rule(client, trigger["rule"]):
                message = _message(f"Deleted rule {trigger['rule']}")
            else:
                message = _message(f"Rule {trigger['rule']} was already deleted")
            rows = data.read_rules(client)
        except (RuleError, ValueError) as exc:
            return no_update, no_update, _message(f"Not saved: {exc}", "error")
        except redis.RedisError as exc:
            return no_update, no_update, _message(f"Redis unreachable: {exc}", "error")
        return panels.rules_table(rows, settings.window), _rules_digest(rows), message

    @app.callback(
        *(Output(state.component_id, "value") for state in rule_form),
        Output(ids.RULE_STATUS, "children", allow_duplicate=True),
        Input({"type": ids.RULE_EDIT, "rule": ALL}, "n_clicks"),
        Input(ids.RULE_CLEAR, "n_clicks"),
        prevent_initial_call=True,
    )
    def fill_rule_form(*_: Any) -> tuple[Any, ...]:
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            return tuple(no_update for _ in range(len(form_names) + 1))
        trigger = ctx.triggered_id
        if trigger == ids.RULE_CLEAR:
            blank = {
                "id": "",
                "name": "",
                "threshold": "",
                "cooldown_s": DEFAULT_COOLDOWN_TEXT,
                "window": "",
                "method": None,
                "conditions": "",
                "enabled": ["on"],
            }
            return (*(blank.get(name, no_update) for name in form_names), "")
        rule_id = str(trigger["rule"])
        unchanged = tuple(no_update for _ in form_names)
        try:
            raw = client.hget(keys.ALERT_RULES, rule_id)
        except redis.RedisError as exc:
            return (*unchanged, _message(f"Not loaded, Redis unreachable: {exc}", "error"))
        if raw is None:
            return (*unchanged, _message("That rule no longer exists", "error"))
        try:
            values, problem = forms.form_from_stored(rule_id, str(raw))
        except RuleError as exc:
            return (*unchanged, _message(str(exc), "error"))
        if problem:
            note = _message(f"Editing {rule_id}, which is invalid: {problem}", "error")
        else:
            note = _message(f"Editing {rule_id}")
        return (*(values[name] for name in form_names), note)

    @app.callback(
        Output(ids.ADF_STATUS, "children"),
        Input(ids.ADF_BUTTON, "n_clicks"),
        State(ids.VIEW, "data"),
        prevent_initial_call=True,
    )
    def run_adf(_: int, stored: Any) -> str:
        try:
            view = Selection.from_store(stored)
        except ValueError as exc:
            return str(exc)
        if view.mode != "live":
            return "ADF on demand runs on the live view; history and uploads show their own tests."
        try:
            actions.request_adf(client, view.pair_view().id)
        except redis.RedisError as exc:
            return f"Not sent, Redis unreachable: {exc}"
        return (
            f"ADF requested at {clock_utc(now_ms())} UTC for {view.pair_view().id}; "
            "the result appears above when the worker has it."
        )

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
            view = Selection.from_store(stored)
            name, text, rows = export_csv(client, settings, view, cursor, zoom)
        except ValueError as exc:
            return no_update, f"Nothing exported: {exc}"
        except redis.RedisError as exc:
            return no_update, f"Nothing exported, Redis unreachable: {exc}"
        return {"content": text, "filename": name, "type": "text/csv"}, f"{name}: {rows:,} rows"

    app.clientside_callback(  # type: ignore[no-untyped-call]
        UPLOAD_CHECK_JS,
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
        limit = int(settings.dash_upload_max_mb * 1_048_576)
        try:
            files = [
                upload.decode_contents(str(name), str(contents), limit)
                for name, contents in zip(accepted["names"], accepted["contents"], strict=True)
            ]
            pair = upload.pair_from_files(files)
            token = actions.store_upload(client, pair)
        except upload.UploadError as exc:
            return no_update, _message(str(exc), "error"), no_update, None
        except redis.RedisError as exc:
            return (
                no_update,
                _message(f"Not stored, Redis unreachable: {exc}", "error"),
                no_update,
                None,
            )
        except Exception as exc:  # the status must not stay at "Reading ..."
            log.exception("upload not read")
            message = f"The upload could not be read ({type(exc).__name__}: {exc})"
            return no_update, _message(message, "error"), no_update, None
        dropped = f"; {pair.dropped:,} rows without a partner bar left out" if pair.dropped else ""
        text = (
            f"Loaded {pair.a.symbol}/{pair.b.symbol}: {pair.rows:,} aligned bars from "
            f"{', '.join(pair.files)}{dropped}."
        )
        return token, _message(text, "ok"), "upload", None


def _rules_digest(rows: list[records.RuleRow]) -> str:
    body = orjson.dumps([(row.rule_id, row.raw) for row in rows])
    return f"{zlib.crc32(body):08x}"
