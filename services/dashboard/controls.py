"""From what the controls hold to a validated view (pure): symbols, timeframe, window, method,
threshold, mode, history range, and the zoomed range of the chart."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from services.dashboard.formatting import parse_utc, plotly_time_ms, short_utc
from services.dashboard.selection import MAX_K, MIN_K, Selection
from shared.views import MAX_WINDOW, METHODS, MIN_WINDOW

PRESET_MS = {"15m": 900_000, "1h": 3_600_000, "6h": 21_600_000, "24h": 86_400_000,
             "7d": 604_800_000}  # fmt: skip
RANGE_KEY = re.compile(r"^xaxis\d*\.range(\[(0|1)\])?$")
AUTORANGE_KEY = re.compile(r"^xaxis\d*\.autorange$")
"""The `relayoutData` keys that say the time range changed (the page's zoom filter uses them)."""


def resolve_range(
    preset: str | None,
    from_text: str | None,
    to_text: str | None,
    now_ms: int,
    span: tuple[int, int] | None,
) -> tuple[int, int]:
    """[start, end) in epoch ms: the typed UTC times when a start was typed (an empty end is now),
    else the preset (relative to now) or everything stored (`span`, the first and last stored
    trade); `ValueError` saying what is wrong."""
    typed = bool(from_text and from_text.strip())
    if preset in PRESET_MS and not typed:
        return now_ms - PRESET_MS[preset], now_ms
    if preset == "all" and not typed:
        if span is None:
            raise ValueError("no ticks are stored yet, so there is no history to load")
        return span[0], span[1] + 1
    if not from_text or not from_text.strip():
        raise ValueError("type a start time (UTC), like 2025-12-16 13:40:00")
    start = parse_utc(from_text)
    end = now_ms if not to_text or to_text.strip().lower() in ("", "now") else parse_utc(to_text)
    if start >= end:
        raise ValueError(f"the start {short_utc(start)} is not before the end {short_utc(end)}")
    return start, end


def _window(value: Any) -> int:
    if value is None or value == "":
        raise ValueError(f"type a window of {MIN_WINDOW} to {MAX_WINDOW:,} bars")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the window {value!r} is not a number of bars") from None
    if not number.is_integer() or not MIN_WINDOW <= number <= MAX_WINDOW:
        raise ValueError(
            f"the window must be a whole number of {MIN_WINDOW} to {MAX_WINDOW:,} bars"
        )
    return int(number)


def _threshold(value: Any) -> float:
    try:
        k = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the z threshold must be a number from {MIN_K} to {MAX_K:g}") from None
    if not MIN_K <= k <= MAX_K:
        raise ValueError(f"the z threshold must be from {MIN_K} to {MAX_K:g}")
    return k


def view_from_controls(
    *,
    mode: str,
    a: str | None,
    b: str | None,
    tf: str | None,
    window: Any,
    method: str | None,
    k: Any,
    theme: str | None,
    history: tuple[int, int] | None = None,
    upload: str = "",
) -> Selection:
    """The validated view; `ValueError` with a sentence for the user."""
    if not a or not b:
        raise ValueError("pick symbols A and B")
    if a == b:
        raise ValueError(f"A and B are both {a}: pick two different symbols")
    if not tf:
        raise ValueError("pick a timeframe")
    if method not in METHODS:
        raise ValueError("pick a hedge-ratio method")
    start, end = history if mode == "history" and history else (None, None)
    return Selection(
        mode=cast(Any, mode),
        a=a,
        b=b,
        tf=tf,
        window=_window(window),
        method=method,
        k=_threshold(k),
        theme="light" if theme == "light" else "dark",
        start_ms=start,
        end_ms=end,
        upload=upload if mode == "upload" else "",
    )


def zoom_from_relayout(relayout: Mapping[str, Any] | None) -> tuple[int, int] | str | None:
    """The zoomed time range from a Plotly `relayoutData`, `"reset"` when the user went back to
    the full range, None when the event is about something else (y zoom, legend, drag mode)."""
    if not relayout:
        return None
    for key, value in relayout.items():
        if AUTORANGE_KEY.match(key) and value:
            return "reset"
    ends: dict[str, Any] = {}
    for key, value in relayout.items():
        if not RANGE_KEY.match(key):
            continue
        if key.endswith("]"):
            ends[key[-2]] = value
        elif isinstance(value, list | tuple) and len(value) == 2:
            ends = {"0": value[0], "1": value[1]}
    start, end = plotly_time_ms(ends.get("0")), plotly_time_ms(ends.get("1"))
    if start is None or end is None:
        return None
    return (start, end) if start <= end else (end, start)
