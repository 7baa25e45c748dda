"""What the chart and statistics panel show for a view, in each of the three modes.

- live: the view's streams in Redis. A full render loads the newest `DASH_MAX_POINTS` entries;
  each live step reads only the entries after the ids the browser has seen (its cursor) and
  returns a Patch, so its cost depends on what is new, not on what is on screen or stored.
- history: bars of both legs from SQLite for a time range, statistics by `shared.pairstats`.
- upload: an uploaded OHLC file, statistics by `shared.pairstats`.

The cursor is a plain dict kept by the browser (`dcc.Store`): no state lives in the server.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, cast

import numpy as np
import orjson
import pandas as pd
import redis

from services.dashboard import actions, analysis, data, export, panels
from services.dashboard.figures import ChartData, Theme, build_figure, extend_patch, thin
from services.dashboard.formatting import fmt_count, short_utc, tf_label
from shared.config import Settings, timeframe_ms
from shared.pairstats import Stationarity
from shared.schemas import Alert, Bar, PairStat
from shared.streamids import id_parts
from shared.tickdb import TickDbError
from shared.views import METHODS, Method, PairView

Mode = Literal["live", "history", "upload"]
MODES: tuple[Mode, ...] = ("live", "history", "upload")
LIVE_BATCH = 500
"""More new entries than this in one step (after a pause, say) and the step renders in full."""
MIN_K, MAX_K = 0.1, 20.0


@dataclass(frozen=True)
class Selection:
    """Everything the controls decide, as kept in the browser's `view` store."""

    mode: Mode
    a: str
    b: str
    tf: str
    window: int
    method: Method
    k: float
    theme: Theme = "dark"
    start_ms: int | None = None
    end_ms: int | None = None
    upload: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not (MIN_K <= self.k <= MAX_K) or not math.isfinite(self.k):
            raise ValueError(f"the z-score threshold must be between {MIN_K} and {MAX_K}")
        if self.mode == "history" and (
            self.start_ms is None or self.end_ms is None or self.start_ms >= self.end_ms
        ):
            raise ValueError("a history range needs a start before its end")
        if self.mode == "upload" and not self.upload:
            raise ValueError("upload a CSV file first")
        self.pair_view()

    def pair_view(self) -> PairView:
        return PairView(self.a, self.b, self.tf, self.window, self.method)

    @property
    def key(self) -> str:
        """Identifies what is drawn; also the figure's `uirevision` (a new key resets zoom)."""
        parts = [self.mode, self.pair_view().id, f"k{self.k:g}", self.theme]
        if self.mode == "history":
            parts += [str(self.start_ms), str(self.end_ms)]
        if self.mode == "upload":
            parts.append(self.upload)
        return "|".join(parts)

    def to_store(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_store(cls, stored: Any) -> Selection:
        if not isinstance(stored, dict):
            raise ValueError("no view chosen yet")
        method = stored.get("method")
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
        return cls(
            mode=stored.get("mode", "live"),
            a=str(stored.get("a", "")),
            b=str(stored.get("b", "")),
            tf=str(stored.get("tf", "")),
            window=int(stored.get("window", 0)),
            method=cast(Method, method),
            k=float(stored.get("k", 2.0)),
            theme="light" if stored.get("theme") == "light" else "dark",
            start_ms=stored.get("start_ms"),
            end_ms=stored.get("end_ms"),
            upload=str(stored.get("upload") or ""),
        )


@dataclass
class Screen:
    """The outputs of one render; None means "leave as it is"."""

    figure: Any = None
    cursor: dict[str, Any] | None = None
    stats: list[Any] | None = None
    status: str | None = None


# Helpers --------------------------------------------------------------------------------------


def _digest(latest: dict[str, str]) -> str:
    return f"{zlib.crc32(orjson.dumps(latest, option=orjson.OPT_SORT_KEYS)):08x}"


def newest_adf(stats: Sequence[PairStat], previous: dict[str, float]) -> dict[str, float]:
    """The stationarity fields of the newest statistics that carry them (else `previous`)."""
    found = Stationarity.newest(stats)
    return previous if found is None else found.values()


def _markers(alerts: Sequence[tuple[str, Alert]], view: PairView, since: int | None) -> list[Alert]:
    return [
        alert
        for _, alert in alerts
        if data.alert_matches(alert, view) and (since is None or alert.ts >= since)
    ]


def _first_time(chart: ChartData) -> int | None:
    firsts = [rows[0].start for rows in (chart.bars_a, chart.bars_b) if rows]
    firsts += [chart.stats[0].ts] if chart.stats else []
    return min(firsts) if firsts else None


def empty_rows(chart: ChartData, waiting_stats: str) -> dict[int, str]:
    """Messages for rows that have nothing to draw yet, saying what is missing."""
    empty: dict[int, str] = {}
    missing = [s for s, rows in ((chart.a, chart.bars_a), (chart.b, chart.bars_b)) if not rows]
    if missing:
        message = f"Waiting for the first {chart.tf} bars of {' and '.join(missing)}"
        empty[1] = empty[5] = message
    if not chart.stats:
        for row in (2, 3, 4):
            empty[row] = waiting_stats
    return empty


def waiting_for_stats(view: PairView, default_window: int) -> str:
    what = f"{view.a}-{view.b} {view.tf}, window {view.window}, {view.method.upper()}"
    if view.is_default(default_window):
        return f"Waiting for the analytics worker's statistics of {what}"
    return f"Waiting for the analytics worker to serve {what} (asked for this view)"


def _status(
    view: Selection,
    counts: dict[str, int],
    cap: int,
    extra: str = "",
    chart: ChartData | None = None,
) -> str:
    label = {"live": "Live", "history": "History", "upload": "Upload"}[view.mode]
    a, b, tf = (chart.a, chart.b, chart.tf) if chart else (view.a, view.b, view.tf)
    bars = max(counts.get("a", 0), counts.get("b", 0))
    text = (
        f"{label} · {a}/{b} · {tf} · window {view.window} "
        f"{view.method.upper()} · {fmt_count(bars)} bars, {fmt_count(counts.get('stats', 0))} "
        f"statistics on screen (cap {fmt_count(cap)})"
    )
    return f"{text} · {extra}" if extra else text


# Live -----------------------------------------------------------------------------------------


def _chart_of(pair: PairView, snap: data.Snapshot, alerts: Sequence[Alert] = ()) -> ChartData:
    return ChartData(
        pair.a,
        pair.b,
        pair.tf,
        [bar for _, bar in snap.bars_a],
        [bar for _, bar in snap.bars_b],
        [stat for _, stat in snap.stats],
        alerts,
    )


def live_full(client: redis.Redis, settings: Settings, view: Selection) -> Screen:
    pair = view.pair_view()
    snap = data.read_recent(client, pair, settings.window, settings.dash_max_points)
    chart = _chart_of(pair, snap)
    chart = replace(chart, alerts=_markers(snap.alerts, pair, _first_time(chart)))
    waiting = waiting_for_stats(pair, settings.window)
    figure = build_figure(
        chart, k=view.k, theme=view.theme, uirevision=view.key, empty=empty_rows(chart, waiting)
    )
    adf = newest_adf(chart.stats, {})
    latest = data.latest_stat(snap.latest) or (chart.stats[-1] if chart.stats else None)
    counts = {role: chart.count(role) for role in data.ROLES}
    cursor = {
        "key": view.key,
        "ids": snap.tails,
        "n": counts,
        "adf": adf,
        "latest": _digest(snap.latest),
    }
    skipped = f"{snap.skipped} malformed entries skipped" if snap.skipped else ""
    return Screen(
        figure=figure,
        cursor=cursor,
        stats=panels.stats_panel(latest, adf, tf=pair.tf, k=view.k, waiting=waiting),
        status=_status(view, counts, settings.dash_max_points, skipped),
    )


def live_step(
    client: redis.Redis, settings: Settings, view: Selection, cursor: dict[str, Any] | None
) -> Screen:
    """The next live update; a full render when the cursor belongs to another view, a stream was
    reset, a row gets its first data (to clear its empty-state message), or too much is new."""
    if not cursor or cursor.get("key") != view.key:
        return live_full(client, settings, view)
    pair = view.pair_view()
    seen: dict[str, str] = cursor["ids"]
    snap = data.read_since(client, pair, settings.window, seen, LIVE_BATCH)
    counts: dict[str, int] = cursor["n"]
    new: dict[str, Sequence[object]] = {
        "a": snap.bars_a,
        "b": snap.bars_b,
        "stats": snap.stats,
        "alerts": snap.alerts,
    }
    reset = any(id_parts(snap.tails[role]) < id_parts(seen.get(role, data.START)) for role in new)
    first_data = any(counts.get(role, 0) == 0 and new[role] for role in ("a", "b", "stats"))
    flood = any(len(rows) >= LIVE_BATCH for rows in new.values())
    if reset or first_data or flood:
        return live_full(client, settings, view)
    chart = _chart_of(pair, snap, _markers(snap.alerts, pair, None))
    screen = Screen()
    adf = newest_adf(chart.stats, cursor.get("adf") or {})
    digest = _digest(snap.latest)
    if any(chart.count(role) for role in data.ROLES):
        screen.figure, counts = extend_patch(chart, counts, settings.dash_max_points, view.k)
        screen.status = _status(view, counts, settings.dash_max_points)
    if digest != cursor.get("latest") or adf != cursor.get("adf"):
        latest = data.latest_stat(snap.latest) or (chart.stats[-1] if chart.stats else None)
        if latest is not None:
            screen.stats = panels.stats_panel(latest, adf, tf=pair.tf, k=view.k)
    screen.cursor = {
        "key": view.key,
        "ids": snap.newest_ids(seen),
        "n": counts,
        "adf": adf,
        "latest": digest,
    }
    return screen


# History and uploads --------------------------------------------------------------------------


def bars_from_frame(frame: pd.DataFrame) -> list[Bar]:
    columns = [frame[c].tolist() for c in ("start", "open", "high", "low", "close", "volume")]
    extra = [frame[c].tolist() for c in ("vwap", "trades")]
    return [
        Bar(int(t), float(o), float(h), float(lo), float(c), float(v), float(w), int(n))
        for t, o, h, lo, c, v, w, n in zip(*columns, *extra, strict=True)
    ]


@dataclass(frozen=True)
class Loaded:
    """A static data set (history range or upload): every row, and a note for the status."""

    chart: ChartData
    note: str = ""
    error: str = ""
    bar_columns: tuple[str, ...] = tuple(export.BAR_COLUMNS)


def _stats_for(
    times: np.ndarray,
    close_a: np.ndarray,
    close_b: np.ndarray,
    view: Selection,
    settings: Settings,
) -> tuple[list[PairStat], str]:
    """Statistics of aligned closes by `shared.pairstats`, or why there are none."""
    if len(times) == 0:
        return [], ""
    try:
        stats = analysis.pair_stats(
            times, close_a, close_b, view.window, view.method, settings.kalman_delta
        )
    except ValueError as exc:
        return [], f"statistics not computed: {exc}"
    return stats, ""


def load_history(settings: Settings, view: Selection) -> Loaded:
    """Bars of `[start, end)` from SQLite; statistics over them (with a window of warm-up bars
    read before `start`, so the first bar on screen already has a full window)."""
    pair = view.pair_view()
    tf_ms = timeframe_ms(pair.tf)
    start = cast(int, view.start_ms) // tf_ms * tf_ms  # the bar holding the start is shown whole
    end = cast(int, view.end_ms)
    estimated = (end - start) // tf_ms
    empty = ChartData(pair.a, pair.b, pair.tf)
    if estimated > settings.dash_history_max_bars:
        return Loaded(
            empty,
            error=(
                f"{short_utc(start)} to {short_utc(end)} is about {fmt_count(estimated)} "
                f"{pair.tf} bars; the limit is {fmt_count(settings.dash_history_max_bars)} "
                "(DASH_HISTORY_MAX_BARS): pick a shorter range or a larger timeframe"
            ),
        )
    try:
        stored = data.read_history_bars(
            settings.sqlite_path, pair.a, pair.b, pair.tf, start - pair.window * tf_ms, end
        )
    except TickDbError as exc:
        return Loaded(empty, error=str(exc))
    bars_a, bars_b = bars_from_frame(stored.a), bars_from_frame(stored.b)
    stats, note = _stats_for(*analysis.align_closes(bars_a, bars_b, tf_ms), view, settings)
    chart = ChartData(
        pair.a,
        pair.b,
        pair.tf,
        [bar for bar in bars_a if bar.start >= start],
        [bar for bar in bars_b if bar.start >= start],
        [stat for stat in stats if stat.ts >= start],
    )
    return Loaded(chart, note=note)


def _leg_bars(leg: Any) -> list[Bar]:
    nan = float("nan")
    return [
        Bar(int(t), float(o), float(h), float(lo), float(c), float(v), nan, 0)
        for t, o, h, lo, c, v in zip(
            leg.time, leg.open, leg.high, leg.low, leg.close, leg.volume, strict=True
        )
    ]


def load_uploaded(client: redis.Redis, settings: Settings, view: Selection) -> Loaded:
    pair = actions.load_upload(client, view.upload)
    if pair is None:
        empty = ChartData(view.a, view.b, view.tf)
        return Loaded(empty, error="the upload has expired (kept one hour): upload the file again")
    tf = tf_label(pair.tf_ms) if pair.tf_ms else "bar"
    bars_a, bars_b = _leg_bars(pair.a), _leg_bars(pair.b)
    times = np.asarray(pair.a.time)
    stats, note = _stats_for(times, pair.a.close, pair.b.close, view, settings)
    dropped = f", {fmt_count(pair.dropped)} unmatched rows left out" if pair.dropped else ""
    files = ", ".join(pair.files)
    return Loaded(
        ChartData(pair.a.symbol, pair.b.symbol, tf, bars_a, bars_b, stats),
        note=f"{files}: {fmt_count(pair.rows)} aligned bars{dropped}"
        + (f"; {note}" if note else ""),
        bar_columns=("open", "high", "low", "close", "volume"),
    )


def static_full(client: redis.Redis, settings: Settings, view: Selection) -> Screen:
    """A history range or an upload, drawn once (thinned to `DASH_MAX_POINTS` for display)."""
    loaded = (
        load_history(settings, view)
        if view.mode == "history"
        else load_uploaded(client, settings, view)
    )
    chart = loaded.chart
    cap = settings.dash_max_points
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
    empty = empty_rows(shown, waiting)
    if loaded.error:
        empty = {row: loaded.error for row in range(1, 6)}
    elif not chart.bars_a and not chart.bars_b:
        message = f"No {chart.tf} bars of {chart.a} or {chart.b} stored in this range"
        empty = {row: message for row in range(1, 6)}
    figure = build_figure(shown, k=view.k, theme=view.theme, uirevision=view.key, empty=empty)
    counts = {role: shown.count(role) for role in data.ROLES}
    thinned = len(shown.bars_a) < len(chart.bars_a) or len(shown.stats) < len(chart.stats)
    note = loaded.error or loaded.note
    if thinned:
        note = (note + "; " if note else "") + "thinned for display, the export has every bar"
    adf = newest_adf(chart.stats, {})
    latest = chart.stats[-1] if chart.stats else None
    return Screen(
        figure=figure,
        cursor={"key": view.key, "ids": {}, "n": counts, "adf": adf, "latest": ""},
        stats=panels.stats_panel(latest, adf, tf=chart.tf, k=view.k, waiting=waiting),
        status=_status(view, counts, cap, note, shown),
    )


def render(
    client: redis.Redis,
    settings: Settings,
    view: Selection,
    cursor: dict[str, Any] | None,
    *,
    full: bool,
) -> Screen:
    """The one entry point of the chart callback."""
    if view.mode != "live":
        if full or not cursor or cursor.get("key") != view.key:
            return static_full(client, settings, view)
        return Screen()
    if full:
        return live_full(client, settings, view)
    return live_step(client, settings, view, cursor)


# Export ---------------------------------------------------------------------------------------


def export_csv(
    client: redis.Redis,
    settings: Settings,
    view: Selection,
    cursor: dict[str, Any] | None,
    zoom: dict[str, Any] | None,
) -> tuple[str, str, int]:
    """(file name, CSV text, data rows) of what is on screen: the points the browser holds, at
    full resolution, within the zoomed time range when the user zoomed."""
    start = end = None
    if zoom and zoom.get("key") == view.key:
        start, end = zoom.get("start"), zoom.get("end")
    columns: tuple[str, ...] = tuple(export.BAR_COLUMNS)
    if view.mode == "live":
        if not cursor or cursor.get("key") != view.key:
            raise ValueError("nothing on screen yet")
        pair = view.pair_view()
        snap = data.read_on_screen(client, pair, settings.window, cursor["ids"], cursor["n"])
        chart = _chart_of(pair, snap)
    else:
        loaded = (
            load_history(settings, view)
            if view.mode == "history"
            else load_uploaded(client, settings, view)
        )
        if loaded.error:
            raise ValueError(loaded.error)
        chart, columns = loaded.chart, loaded.bar_columns
    text = export.to_csv(
        chart.a, chart.b, chart.bars_a, chart.bars_b, chart.stats, start, end, bar_columns=columns
    )
    name = export.filename(chart.a, chart.b, chart.tf, start, end)
    return name, text, text.count("\n") - 1
