"""Pair statistics per closed interval for every view served at one timeframe (no I/O).

On each closed interval the closes of all symbols are appended to the timeframe's `CloseMatrix`
and each view's window is the last `n = min(W, aligned bars)` columns of its two rows. OLS views
are computed together, one numpy pass over all pairs with the same window length (`pairstats.
window_stats`, the same arithmetic as the batch `pair_stats`), so 190 pairs cost about what one
does. Kalman views run their filter over the window (O(W)); Huber views and the stationarity
tests (every `ADF_EVERY` bars, on bars chosen by time so that restarts and fills agree) are slow,
so they are left for after the interval's fast statistics are published (`Entry.slow`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from services.analytics.series import CloseMatrix
from shared.config import timeframe_ms
from shared.pairstats import (
    DEFAULT_KALMAN_DELTA,
    MIN_BARS,
    FloatArray,
    Stationarity,
    WindowStats,
    adf_due,
    stationarity,
    window_stats,
)
from shared.schemas import PairStat
from shared.views import PairView


@dataclass(eq=False)
class ViewState:
    """One view served: where it publishes, what it last published, its stationarity."""

    view: PairView
    a: int
    b: int
    stream_key: str
    latest_key: str
    phase: int
    forming_key: str = ""
    published_until: int | None = None
    """Bar time of the newest entry in its stream (nothing at or before it is published again)."""
    last: PairStat | None = None
    stationarity: Stationarity = field(default_factory=Stationarity)
    """The latest stationarity fields computed, carried for alert conditions."""
    stationarity_ts: int | None = None
    """The bar they were computed on (None: not known, as after a restart)."""
    force_adf: bool = False
    latest_extra: bool = True
    """Whether the latest hash may hold stationarity fields (removed when a new bar lacks them)."""
    ready: bool = True
    """False while its stream is being filled from history."""
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.view.id


@dataclass(eq=False)
class Entry:
    """A view's statistics at one bar; `slow` ones are completed by `complete()`."""

    view: ViewState
    start: int
    n: int
    stat: PairStat | None
    slow: bool
    due: bool
    a_window: FloatArray | None = None
    b_window: FloatArray | None = None


def make_stat(
    view: PairView, start: int, n: int, stats: WindowStats, k: int, prices: tuple[float, float]
) -> PairStat:
    return PairStat(
        ts=start,
        price_a=prices[0],
        price_b=prices[1],
        alpha=float(stats.alpha[k]),
        beta=float(stats.beta[k]),
        spread=float(stats.spread[k]),
        zscore=float(stats.zscore[k]),
        corr=float(stats.corr[k]),
        window=view.window,
        n=n,
        method=view.method,
        spread_mean=float(stats.spread_mean[k]),
        spread_std=float(stats.spread_std[k]),
    )


@dataclass(frozen=True, slots=True)
class Completed:
    stat: PairStat
    stationarity: Stationarity | None
    """The stationarity computed (None when none was due)."""


def complete(entry: Entry, kalman_delta: float = DEFAULT_KALMAN_DELTA) -> PairStat:
    return complete_entry(entry, kalman_delta).stat


def complete_entry(entry: Entry, kalman_delta: float = DEFAULT_KALMAN_DELTA) -> Completed:
    """Compute what was left for later: a Huber hedge, the stationarity fields."""
    stat = entry.stat
    if stat is not None and not entry.due:
        return Completed(stat, None)
    a, b = entry.a_window, entry.b_window
    assert a is not None and b is not None, "a slow entry keeps its window"
    if stat is None:
        computed = window_stats(a[None, :], b[None, :], entry.view.view.method, kalman_delta)
        prices = (float(a[-1]), float(b[-1]))
        stat = make_stat(entry.view.view, entry.start, entry.n, computed, 0, prices)
    extra = None
    if entry.due:
        extra = stationarity(a, b, stat.beta)
        stat = extra.applied_to(stat)
    entry.stat = stat
    return Completed(stat, extra)


class TimeframePairs:
    """The close matrix and the views of one timeframe."""

    def __init__(
        self,
        tf: str,
        n_symbols: int,
        capacity: int,
        adf_every: int,
        kalman_delta: float = DEFAULT_KALMAN_DELTA,
    ) -> None:
        self.tf = tf
        self.tf_ms = timeframe_ms(tf)
        self.matrix = CloseMatrix(n_symbols, capacity, self.tf_ms)
        self.adf_every = adf_every
        self.kalman_delta = kalman_delta
        self.views: dict[str, ViewState] = {}
        self._ols_groups: list[tuple[int, list[ViewState], np.ndarray, np.ndarray]] | None = None

    def add(self, state: ViewState) -> None:
        self.views[state.id] = state
        self.matrix.grow(state.view.window + 1)
        self._ols_groups = None

    def remove(self, view_id: str) -> ViewState | None:
        self._ols_groups = None
        return self.views.pop(view_id, None)

    def _groups(self) -> list[tuple[int, list[ViewState], np.ndarray, np.ndarray]]:
        if self._ols_groups is None:
            by_window: dict[int, list[ViewState]] = defaultdict(list)
            for state in self.views.values():
                if state.view.method == "ols":
                    by_window[state.view.window].append(state)
            self._ols_groups = [
                (
                    window,
                    states,
                    np.array([s.a for s in states], dtype=np.intp),
                    np.array([s.b for s in states], dtype=np.intp),
                )
                for window, states in by_window.items()
            ]
        return self._ols_groups

    def on_interval(self, start: int, closes: list[float | None]) -> list[Entry]:
        """Append one interval's closes; the entries of every ready view with enough bars."""
        self.matrix.append(start, closes)
        count = self.matrix.count
        entries: list[Entry] = []
        for window, states, ia, ib in self._groups():
            sizes = np.minimum(np.minimum(count[ia], count[ib]), window)
            wanted = [
                k
                for k, state in enumerate(states)
                if state.ready
                and sizes[k] >= MIN_BARS
                and (state.published_until is None or start > state.published_until)
            ]
            by_size: dict[int, list[int]] = defaultdict(list)
            for k in wanted:
                by_size[int(sizes[k])].append(k)
            for n, members in by_size.items():
                rows = np.array(members, dtype=np.intp)
                a = self.matrix.window(ia[rows], n)
                b = self.matrix.window(ib[rows], n)
                stats = window_stats(a, b, "ols")
                for position, k in enumerate(members):
                    entries.append(self._entry(states[k], start, n, stats, position, a, b))
        for state in self.views.values():
            if state.view.method == "ols" or not state.ready:
                continue
            if state.published_until is not None and start <= state.published_until:
                continue
            n = min(int(count[state.a]), int(count[state.b]), state.view.window)
            if n < MIN_BARS:
                continue
            a = self.matrix.row(state.a, n)
            b = self.matrix.row(state.b, n)
            if state.view.method == "huber":
                due = self._due(state, start)
                entries.append(Entry(state, start, n, None, True, due, a, b))
                continue
            stats = window_stats(a[None, :], b[None, :], state.view.method, self.kalman_delta)
            entries.append(self._entry(state, start, n, stats, 0, a[None, :], b[None, :]))
        return entries

    def _due(self, state: ViewState, start: int) -> bool:
        if state.force_adf:
            state.force_adf = False
            return True
        return adf_due(start, self.tf_ms, self.adf_every, state.phase)

    def _entry(
        self,
        state: ViewState,
        start: int,
        n: int,
        stats: WindowStats,
        position: int,
        a: FloatArray,
        b: FloatArray,
    ) -> Entry:
        prices = (float(a[position, -1]), float(b[position, -1]))
        stat = make_stat(state.view, start, n, stats, position, prices)
        due = self._due(state, start)
        if not due:
            return Entry(state, start, n, stat, False, False)
        return Entry(state, start, n, stat, True, True, a[position].copy(), b[position].copy())
