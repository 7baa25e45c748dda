"""Pair statistics for data the analytics worker did not serve (history, uploads), computed by
the shared batch implementation `shared.pairstats`, the same statistics the worker publishes.

The dashboard has no statistics code of its own: this module only puts the two legs' closes on the
worker's bar grid (`shared.bargrid`) and hands them over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shared import bargrid, pairstats
from shared.schemas import PairStat
from shared.table import Table, column
from shared.views import Method


def align_closes(
    bars_a: Sequence[Any], bars_b: Sequence[Any], tf_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, close A, close B) on the analytics worker's grid (`shared.bargrid`): every interval
    from the first in which both legs traded to the last bar of either, closes carried over
    intervals without trades, whether one leg or neither traded in them."""

    def leg(bars: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """`bars`: records or a table with `start` and `close`."""
        return column(bars, "start").astype(np.int64), column(bars, "close")

    return bargrid.aligned_closes(*leg(bars_a), *leg(bars_b), tf_ms)


MAX_STATIONARITY_ROWS = 200
"""The ADF and cointegration tests cost milliseconds each: on a long series an export has them on
at most this many evenly spaced bars (always including the last, which the statistics panel
shows)."""


def stationarity_rows(length: int, window: int, *, spaced: bool = True) -> np.ndarray:
    """Which bars get the stationarity fields: every `max(window, length / 200)`-th and the last;
    only the last when not `spaced` (the screen shows no other: 200 positions cost a day of 1s
    bars two seconds)."""
    rows = np.zeros(length, dtype=bool)
    if length:
        if spaced:
            every = max(window, -(-length // MAX_STATIONARITY_ROWS))
            rows[every - 1 :: every] = True
        rows[-1] = True
    return rows


def pair_stats(
    times: np.ndarray,
    close_a: np.ndarray,
    close_b: np.ndarray,
    window: int,
    method: Method,
    kalman_delta: float,
    *,
    spaced: bool = True,
) -> Table[PairStat]:
    """One PairStat per aligned bar (from the third) from the shared batch statistics, with the
    worker's Kalman delta; `ValueError` for series it cannot analyse (a price not above zero).
    `spaced`: the stationarity tests on evenly spaced bars too, not only the last."""
    return pairstats.pair_stat_table(
        times,
        close_a,
        close_b,
        window=window,
        method=method,
        kalman_delta=kalman_delta,
        adf_rows=stationarity_rows(len(times), window, spaced=spaced),
    )
