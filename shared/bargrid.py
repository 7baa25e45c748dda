"""Closes on the regular bar grid the analytics worker uses: one bar per interval, carried.

The worker closes every interval of a timeframe, and a symbol without a trade in it gets a bar
carrying its previous close. Statistics computed elsewhere from stored bars (a view filled from
history, the dashboard's history mode) put those bars back the same way, so they see the same
series the worker saw: same length, same closes, same times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def carry(starts: np.ndarray, closes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The close of the latest bar starting at or before each of `times` (`starts` ascending);
    NaN before the first bar."""
    index = np.searchsorted(starts, times, side="right") - 1
    carried = np.asarray(closes, dtype=np.float64)[np.maximum(index, 0)]
    return np.where(index >= 0, carried, np.nan) if len(starts) else np.full(len(times), np.nan)


def carried_closes(bars: pd.DataFrame, first: int, end: int, tf_ms: int) -> list[float]:
    """Closes of every interval from the first bar with trades at or after `first` up to `end`
    (exclusive), carrying the previous close over intervals without trades."""
    if bars.empty:
        return []
    starts = bars["start"].to_numpy(dtype=np.int64)
    times = np.arange(max(first, int(starts[0])), end, tf_ms, dtype=np.int64)
    closes: list[float] = carry(starts, bars["close"].to_numpy(dtype=np.float64), times).tolist()
    return closes


def aligned_closes(
    starts_a: np.ndarray,
    closes_a: np.ndarray,
    starts_b: np.ndarray,
    closes_b: np.ndarray,
    tf_ms: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, close A, close B) of a pair on the worker's grid: every `tf_ms` interval from the
    first in which both legs had traded to the last bar of either, each close carried over
    intervals without trades. Empty when a leg has no bar."""
    if not len(starts_a) or not len(starts_b):
        empty = np.empty(0)
        return empty.astype(np.int64), empty, empty
    first = max(int(starts_a[0]), int(starts_b[0]))
    end = max(int(starts_a[-1]), int(starts_b[-1])) + tf_ms
    times = np.arange(first, end, tf_ms, dtype=np.int64)
    return times, carry(starts_a, closes_a, times), carry(starts_b, closes_b, times)


__all__ = ["aligned_closes", "carried_closes", "carry"]
