"""The static data sets behind the chart: a history range from SQLite, an upload from Redis.

Each loader reads everything in one go and returns a `Loaded` record (every row, at full
resolution); statistics over them come from `shared.pairstats`, through `analysis.py`.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import redis

from services.dashboard import actions, analysis, data
from services.dashboard.figures import ChartData
from services.dashboard.formatting import fmt_count, short_utc, tf_label
from services.dashboard.records import Loaded
from services.dashboard.selection import Selection
from shared.config import Settings, timeframe_ms
from shared.schemas import Bar, PairStat
from shared.tickdb import TickDbError


def bars_from_frame(frame: pd.DataFrame) -> list[Bar]:
    columns = [frame[c].tolist() for c in ("start", "open", "high", "low", "close", "volume")]
    extra = [frame[c].tolist() for c in ("vwap", "trades")]
    return [
        Bar(int(t), float(o), float(h), float(lo), float(c), float(v), float(w), int(n))
        for t, o, h, lo, c, v, w, n in zip(*columns, *extra, strict=True)
    ]


def _stats_for(
    times: np.ndarray,
    close_a: np.ndarray,
    close_b: np.ndarray,
    view: Selection,
    settings: Settings,
    spaced: bool,
) -> tuple[list[PairStat], str]:
    """Statistics of aligned closes by `shared.pairstats`, or why there are none."""
    if len(times) == 0:
        return [], ""
    try:
        stats = analysis.pair_stats(
            times, close_a, close_b, view.window, view.method, settings.kalman_delta,
            spaced=spaced,
        )  # fmt: skip
    except ValueError as exc:
        return [], f"statistics not computed: {exc}"
    return stats, ""


def load_history(settings: Settings, view: Selection, *, spaced: bool = True) -> Loaded:
    """Bars of `[start, end)` from SQLite; statistics over them (with a window of warm-up bars
    read before `start`, so the first bar on screen already has a full window); `spaced`: see
    `analysis.stationarity_rows`."""
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
    stats, note = _stats_for(*analysis.align_closes(bars_a, bars_b, tf_ms), view, settings, spaced)
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


def load_uploaded(
    client: redis.Redis, settings: Settings, view: Selection, *, spaced: bool = True
) -> Loaded:
    pair = actions.load_upload(client, view.upload)
    if pair is None:
        empty = ChartData(view.a, view.b, view.tf)
        return Loaded(empty, error="the upload has expired (kept one hour): upload the file again")
    tf = tf_label(pair.tf_ms) if pair.tf_ms else "bar"
    bars_a, bars_b = _leg_bars(pair.a), _leg_bars(pair.b)
    times = np.asarray(pair.a.time)
    stats, note = _stats_for(times, pair.a.close, pair.b.close, view, settings, spaced)
    dropped = f", {fmt_count(pair.dropped)} unmatched rows left out" if pair.dropped else ""
    files = ", ".join(pair.files)
    return Loaded(
        ChartData(pair.a.symbol, pair.b.symbol, tf, bars_a, bars_b, stats),
        note=f"{files}: {fmt_count(pair.rows)} aligned bars{dropped}"
        + (f"; {note}" if note else ""),
        bar_columns=("open", "high", "low", "close", "volume"),
    )


def load_static(
    client: redis.Redis, settings: Settings, view: Selection, *, spaced: bool = True
) -> Loaded:
    """The history range or the upload of a view that is not live; `spaced`: the stationarity
    tests on evenly spaced bars, as an export has them (the screen needs the last bar's only)."""
    if view.mode == "history":
        return load_history(settings, view, spaced=spaced)
    return load_uploaded(client, settings, view, spaced=spaced)
