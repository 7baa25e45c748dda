"""The static data sets behind the chart: a history range from SQLite, an upload from Redis.

Each loader reads everything in one go and returns a `Loaded` record (every row, at full
resolution); statistics over them come from `shared.pairstats`, through `analysis.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import redis

from services.dashboard import actions, analysis, data
from services.dashboard.figures import ChartBar, ChartData
from services.dashboard.formatting import fmt_count, short_utc, tf_label
from services.dashboard.records import Loaded
from services.dashboard.selection import Selection
from shared.config import Settings, timeframe_ms
from shared.schemas import Bar, PairStat, record_fields
from shared.table import Table
from shared.tickdb import TickDbError


def _stats_for(
    times: np.ndarray,
    close_a: np.ndarray,
    close_b: np.ndarray,
    view: Selection,
    settings: Settings,
    spaced: bool,
) -> tuple[Sequence[PairStat], str]:
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


def load_history(settings: Settings, view: Selection, *, screen: bool = False) -> Loaded:
    """Bars of `[start, end)` from SQLite; statistics over them (with a window of warm-up bars
    read before `start`, so the first bar on screen already has a full window). For the
    `screen`, only the fields it draws and the stationarity of the last bar (see
    `analysis.stationarity_rows`), all of them for an export; as tables (`shared.table`), so
    a day of 1s bars is a few arrays, not 100,000 records."""
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
    record: type[Any] = ChartBar if screen else Bar
    try:
        stored = data.read_history_bars(
            settings.sqlite_path, pair.a, pair.b, pair.tf, start - pair.window * tf_ms, end,
            record_fields(record),
        )  # fmt: skip
    except TickDbError as exc:
        return Loaded(empty, error=str(exc))
    bars_a, bars_b = Table(record, stored.a), Table(record, stored.b)
    aligned = analysis.align_closes(bars_a, bars_b, tf_ms)
    stats, note = _stats_for(*aligned, view, settings, spaced=not screen)
    chart = ChartData(
        pair.a,
        pair.b,
        pair.tf,
        bars_a.from_value("start", start),
        bars_b.from_value("start", start),
        _from_time(stats, start),
    )
    return Loaded(chart, note=note)


def _from_time(stats: Sequence[PairStat], start: int) -> Sequence[PairStat]:
    if isinstance(stats, Table):
        return stats.from_value("ts", start)
    return [stat for stat in stats if stat.ts >= start]


def _leg_bars(leg: Any) -> Table[Bar]:
    """An uploaded leg as bars (no VWAP or trade count in a CSV of bars)."""
    length = len(leg.time)
    fields = {name: np.asarray(getattr(leg, name)) for name in ("open", "high", "low", "close")}
    return Table(
        Bar,
        {
            "start": np.asarray(leg.time, dtype=np.int64),
            **fields,
            "volume": np.asarray(leg.volume, dtype=np.float64),
            "vwap": np.full(length, np.nan),
            "trades": np.zeros(length, dtype=np.int64),
        },
    )


def load_uploaded(
    client: redis.Redis, settings: Settings, view: Selection, *, screen: bool = False
) -> Loaded:
    pair = actions.load_upload(client, view.upload)
    if pair is None:
        empty = ChartData(view.a, view.b, view.tf)
        return Loaded(empty, error="the upload has expired (kept one hour): upload the file again")
    tf = tf_label(pair.tf_ms) if pair.tf_ms else "bar"
    bars_a, bars_b = _leg_bars(pair.a), _leg_bars(pair.b)
    times = np.asarray(pair.a.time)
    stats, note = _stats_for(times, pair.a.close, pair.b.close, view, settings, not screen)
    dropped = f", {fmt_count(pair.dropped)} unmatched rows left out" if pair.dropped else ""
    files = ", ".join(pair.files)
    return Loaded(
        ChartData(pair.a.symbol, pair.b.symbol, tf, bars_a, bars_b, stats),
        note=f"{files}: {fmt_count(pair.rows)} aligned bars{dropped}"
        + (f"; {note}" if note else ""),
        bar_columns=("open", "high", "low", "close", "volume"),
    )


def load_static(
    client: redis.Redis, settings: Settings, view: Selection, *, screen: bool = False
) -> Loaded:
    """The history range or the upload of a view that is not live: what the `screen` draws,
    else what an export has (every field, the stationarity tests on evenly spaced bars too)."""
    if view.mode == "history":
        return load_history(settings, view, screen=screen)
    return load_uploaded(client, settings, view, screen=screen)
