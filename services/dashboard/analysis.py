"""Pair statistics for data the analytics worker did not serve (history, uploads), computed by
the shared batch implementation `shared.pairstats`, the same statistics the worker publishes.

The dashboard has no statistics code of its own: this module only aligns the two legs' closes and
hands them over.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared import pairstats
from shared.schemas import Bar, PairStat
from shared.views import Method


def align_closes(
    bars_a: Sequence[Bar], bars_b: Sequence[Bar]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, close A, close B) on the union of both legs' bar times, each close carried forward
    over bars without trades (as the worker's bars do); times before both legs traded are left
    out."""
    times = np.union1d(
        np.fromiter((bar.start for bar in bars_a), dtype=np.int64, count=len(bars_a)),
        np.fromiter((bar.start for bar in bars_b), dtype=np.int64, count=len(bars_b)),
    )
    closes = []
    for bars in (bars_a, bars_b):
        column = np.full(len(times), np.nan)
        if bars:
            starts = np.fromiter((bar.start for bar in bars), dtype=np.int64, count=len(bars))
            column[np.searchsorted(times, starts)] = [bar.close for bar in bars]
        filled = np.maximum.accumulate(np.where(np.isnan(column), -1, np.arange(len(times))))
        closes.append(np.where(filled >= 0, column[np.maximum(filled, 0)], np.nan))
    usable = ~(np.isnan(closes[0]) | np.isnan(closes[1]))
    return times[usable], closes[0][usable], closes[1][usable]


MAX_STATIONARITY_ROWS = 200
"""The ADF and cointegration tests cost milliseconds each: on a long series they run on at most
this many evenly spaced bars (always including the last, which the statistics panel shows)."""


def stationarity_rows(length: int, window: int) -> np.ndarray:
    """Which bars get the stationarity fields: every `max(window, length / 200)`-th and the last."""
    rows = np.zeros(length, dtype=bool)
    if length:
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
) -> list[PairStat]:
    """One PairStat per aligned bar (from the third) from the shared batch statistics, with the
    worker's Kalman delta; `ValueError` for series it cannot analyse (a price not above zero)."""
    return pairstats.pair_stats(
        times,
        close_a,
        close_b,
        window=window,
        method=method,
        kalman_delta=kalman_delta,
        adf_rows=stationarity_rows(len(times), window),
    )
