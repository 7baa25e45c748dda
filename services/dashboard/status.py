"""What the chart says in words (pure): its status line and the messages of rows with no data."""

from __future__ import annotations

from services.dashboard.figures import ChartData
from services.dashboard.formatting import fmt_count
from services.dashboard.selection import Selection
from shared.views import PairView

PAUSED = "Paused: press Resume for live updates"
MODE_LABELS = {"live": "Live", "history": "History", "upload": "Upload"}


def push_texts(poll_ms: int) -> dict[str, str]:
    """What the status line says of the push channel, by its state in the page."""
    every = f"polling every {poll_ms / 1000:g} s"
    return {
        "off": "",
        "connecting": "Opening the push channel…",
        "open": "Updates pushed",
        "lost": f"Push channel lost: {every} while it reconnects",
        "refused": f"Push refused by the server: {every}",
        "unsupported": f"This browser cannot receive pushed updates: {every}",
    }


def chart_status(
    view: Selection,
    counts: dict[str, int],
    cap: int,
    extra: str = "",
    chart: ChartData | None = None,
) -> str:
    a, b, tf = (chart.a, chart.b, chart.tf) if chart else (view.a, view.b, view.tf)
    bars = max(counts.get("a", 0), counts.get("b", 0))
    text = (
        f"{MODE_LABELS[view.mode]} · {a}/{b} · {tf} · window {view.window} "
        f"{view.method.upper()} · {fmt_count(bars)} bars, {fmt_count(counts.get('stats', 0))} "
        f"statistics on screen (cap {fmt_count(cap)})"
    )
    return f"{text} · {extra}" if extra else text


def redis_unreachable(exc: Exception) -> str:
    return f"Redis unreachable ({exc}); showing the last data received"


def update_failed(exc: Exception) -> str:
    return f"Update failed ({exc}); retrying"


def waiting_for_stats(view: PairView, default_window: int) -> str:
    what = f"{view.a}-{view.b} {view.tf}, window {view.window}, {view.method.upper()}"
    if view.is_default(default_window):
        return f"Waiting for the analytics worker's statistics of {what}"
    return f"Waiting for the analytics worker to serve {what} (asked for this view)"


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


def all_rows(message: str) -> dict[int, str]:
    return {row: message for row in range(1, 6)}


def static_note(note: str, thinned: bool) -> str:
    if thinned:
        return (note + "; " if note else "") + "reduced for display, the export has every bar"
    return note
