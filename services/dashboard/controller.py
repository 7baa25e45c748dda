"""What the dashboard's callbacks decide, from values to values (pure: no Dash context, no I/O);
the alert-rules panel's decisions are in `rules.py`.

`callbacks.py` reads (`data.py`, `screen.py`), calls one function here, writes what it says
(`actions.py`) and maps the record it gets to the callback's outputs. A field that is None
leaves its output as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dash import Patch, html

from services.dashboard import controls, ids, panels, status, upload
from services.dashboard.export import Export
from services.dashboard.formatting import clock_utc, short_utc
from services.dashboard.records import START, PipelineHealth
from services.dashboard.selection import Selection
from shared.schemas import Alert

FEED_ROWS = 50
"""Fired alerts in the feed table; older rows drop off the bottom."""


def theme_class(theme: str | None, mode: str | None = None) -> str:
    """The page root's classes: its theme, and the screener shown instead of the chart."""
    classes = f"app theme-{'light' if theme == 'light' else 'dark'}"
    return f"{classes} mode-screener" if mode == "screener" else classes


# The view -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewControls:
    """What the view controls hold (the history range fields too)."""

    mode: str
    a: str
    b: str
    tf: str
    window: Any
    method: str
    k: Any
    theme: str
    upload_token: str | None
    preset: str
    start: str | None
    end: str | None

    def view_fields(self) -> dict[str, Any]:
        """The arguments of `controls.view_from_controls` the controls give as they are."""
        names = ("mode", "a", "b", "tf", "window", "method", "k", "theme")
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class ViewChoice:
    view: Selection | None
    """None keeps the view shown; `error` says why."""
    error: str
    span_text: str | None

    @property
    def store(self) -> dict[str, Any] | None:
        return None if self.view is None else self.view.to_store()

    @property
    def live_view_id(self) -> str | None:
        """The view to register with the analytics worker."""
        return self.view.pair_view().id if self.view and self.view.mode == "live" else None


def stored_span(spans: Mapping[str, tuple[int, int] | None]) -> tuple[int, int] | None:
    """From the first to the last trade stored of any of the symbols; None when there is none."""
    stored = [span for span in spans.values() if span]
    return (min(s[0] for s in stored), max(s[1] for s in stored)) if stored else None


def span_text(span: tuple[int, int] | None) -> str:
    if span is None:
        return "No ticks stored yet."
    return f"Stored: {short_utc(span[0])} to {short_utc(span[1])} UTC"


def choose_view(
    chosen: ViewControls, spans: Mapping[str, tuple[int, int] | None] | None, now_ms: int
) -> ViewChoice:
    """The validated view; `spans` (the stored trades per symbol) is read in history mode only."""
    text: str | None = None
    if chosen.mode == "screener":  # the pair view stays as it is, behind the screener
        return ViewChoice(None, "", None)
    try:
        history = None
        if chosen.mode == "history":
            span = stored_span(spans or {})
            text = span_text(span)
            history = controls.resolve_range(chosen.preset, chosen.start, chosen.end, now_ms, span)
        if chosen.mode == "upload" and not chosen.upload_token:
            raise ValueError("upload a CSV file first (below), then pick Upload")
        view = controls.view_from_controls(
            **chosen.view_fields(), history=history, upload=chosen.upload_token or ""
        )
    except ValueError as exc:
        return ViewChoice(None, str(exc), text)
    return ViewChoice(view, "", text)


def live_view_id(stored: Any) -> str | None:
    """The id of the live view in the browser's store, to renew; None for any other view."""
    if not (isinstance(stored, dict) and stored.get("mode") == "live"):
        return None
    try:
        return Selection.from_store(stored).pair_view().id
    except ValueError:
        return None


@dataclass(frozen=True)
class Pause:
    paused: bool
    label: str


def toggle_pause(paused: bool | None) -> Pause:
    return Pause(not paused, "Resume" if not paused else "Pause")


# The chart ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartPlan:
    view: Selection | None
    """None: nothing to render, only `status` (when set) changes."""
    full: bool = False
    status: str | None = None


def plan_chart(stored: Any, paused: bool | None, trigger: Any) -> ChartPlan:
    """Whether the chart renders in full, steps on from the cursor, or stays as it is."""
    try:
        view = Selection.from_store(stored)
    except (ValueError, TypeError):
        return ChartPlan(None)
    zoom_paused = trigger == ids.ZOOM and view.mode == "live"
    if paused and (trigger in (ids.PAUSED, ids.LIVE_TICK, ids.PUSH_TICK) or zoom_paused):
        # Said on every tick, so an update that was in flight when Pause was pressed cannot
        # leave the status saying "Live". A zoom of the paused live view keeps the bars drawn,
        # so that the screen and an export hold the same ones.
        return ChartPlan(None, status=status.PAUSED)
    return ChartPlan(view, full=trigger in (None, ids.VIEW, ids.PAUSED, ids.ZOOM))


@dataclass(frozen=True)
class ZoomChange:
    store: dict[str, Any] | None
    """The zoom store's new value (None: the user went back to the full range)."""


def zoom_change(relayout: dict[str, Any] | None, stored: Any) -> ZoomChange | None:
    """The zoomed range to remember for the view in `stored`; None when the zoom did not change."""
    zoom = controls.zoom_from_relayout(relayout)
    if zoom is None:
        return None
    key = Selection.from_store(stored).key if stored else ""
    if zoom == "reset":
        return ZoomChange(None)
    return ZoomChange({"key": key, "start": zoom[0], "end": zoom[1]})


@dataclass(frozen=True)
class Download:
    file: dict[str, Any]
    status: str


def download(export: Export) -> Download:
    file = {"content": export.text, "filename": export.filename, "type": "text/csv"}
    return Download(file, f"{export.filename}: {export.rows:,} rows")


def nothing_exported(exc: Exception) -> str:
    return f"Nothing exported: {exc}"


def nothing_exported_redis(exc: Exception) -> str:
    return f"Nothing exported, Redis unreachable: {exc}"


@dataclass(frozen=True)
class AdfTarget:
    view_id: str | None
    refusal: str = ""


def adf_target(stored: Any) -> AdfTarget:
    """The live view to ask an ADF test for, or why there is none."""
    try:
        view = Selection.from_store(stored)
    except ValueError as exc:
        return AdfTarget(None, str(exc))
    if view.mode != "live":
        refusal = "ADF on demand runs on the live view; history and uploads show their own tests."
        return AdfTarget(None, refusal)
    return AdfTarget(view.pair_view().id)


def adf_requested(view_id: str, at_ms: int) -> str:
    return (
        f"ADF requested at {clock_utc(at_ms)} UTC for {view_id}; "
        "the result appears above when the worker has it."
    )


def adf_not_sent(exc: Exception) -> str:
    return f"Not sent, Redis unreachable: {exc}"


# Health ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthView:
    chips: list[html.Div]
    redis_text: str
    banner: list[html.Div]
    events: Any = None
    sample: dict[str, Any] | None = None
    live_view_id: str | None = None
    """The live view to renew (while Redis answers)."""


def health_view(health: PipelineHealth, sample: Any, stored: Any) -> HealthView:
    rates = panels.tick_rates(health.feeds, sample, health.at_ms)
    chips, redis_text, banner = panels.health_bar(health, rates)
    if not health.redis_ok:
        return HealthView(chips, redis_text, banner)
    events = panels.events_list(health.events, health.at_ms)
    sampled = panels.feed_sample(health)
    return HealthView(chips, redis_text, banner, events, sampled, live_view_id(stored))


# Fired alerts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertsCursor:
    """The feed's position, kept by the browser: the newest alert shown, the rows on screen, and
    a serial that gives each toast a new key."""

    id: str
    n: int
    serial: int

    def to_store(self) -> dict[str, Any]:
        return {"id": self.id, "n": self.n, "serial": self.serial}

    @classmethod
    def from_store(cls, stored: dict[str, Any]) -> AlertsCursor:
        return cls(stored["id"], stored["n"], stored["serial"])


@dataclass(frozen=True)
class AlertsUpdate:
    feed: Any
    """The table's rows, or a Patch of them."""
    toast: html.Div | None
    cursor: AlertsCursor


def first_alerts(recent: Sequence[tuple[str, Alert]]) -> AlertsUpdate:
    """The feed at page load: the newest alerts (newest first), no toast."""
    newest = recent[0][0] if recent else START
    rows = panels.alerts_feed([alert for _, alert in recent])
    return AlertsUpdate(rows, None, AlertsCursor(newest, len(recent), 0))


def next_alerts(cursor: AlertsCursor, fresh: Sequence[tuple[str, Alert]]) -> AlertsUpdate | None:
    """The alerts fired since the cursor (oldest first) on top of the feed, the oldest rows beyond
    `FEED_ROWS` dropped, and a toast for the newest; None when none fired."""
    if not fresh:
        return None
    feed: Any
    if cursor.n == 0:  # the table holds only its "no alert yet" row: replace it
        feed = panels.alerts_feed([alert for _entry, alert in reversed(fresh)])
        length = len(fresh)
    else:
        feed = Patch()
        for _entry, alert in fresh:
            feed.prepend(panels.alert_row(alert))
        length = cursor.n + len(fresh)
        while length > FEED_ROWS:
            length -= 1
            del feed[length]
    serial = cursor.serial + 1
    toast = panels.toast(fresh[-1][1], serial)
    return AlertsUpdate(feed, toast, AlertsCursor(fresh[-1][0], length, serial))


# Uploads --------------------------------------------------------------------------------------


def read_upload(accepted: Mapping[str, Any], max_mb: float) -> upload.UploadedPair:
    """The pair in the files the browser accepted; `UploadError` saying what is wrong."""
    limit = int(max_mb * 1_048_576)
    files = [
        upload.decode_contents(str(name), str(contents), limit)
        for name, contents in zip(accepted["names"], accepted["contents"], strict=True)
    ]
    return upload.pair_from_files(files)


def upload_loaded(pair: upload.UploadedPair) -> html.Div:
    dropped = f"; {pair.dropped:,} rows without a partner bar left out" if pair.dropped else ""
    text = (
        f"Loaded {pair.a.symbol}/{pair.b.symbol}: {pair.rows:,} aligned bars from "
        f"{', '.join(pair.files)}{dropped}."
    )
    return panels.message(text, "ok")


def upload_refused(exc: Exception) -> html.Div:
    return panels.message(str(exc), "error")


def upload_not_stored(exc: Exception) -> html.Div:
    return panels.message(f"Not stored, Redis unreachable: {exc}", "error")


def upload_unreadable(exc: Exception) -> html.Div:
    return panels.message(f"The upload could not be read ({type(exc).__name__}: {exc})", "error")
