"""Aligning two legs' closes for the shared batch statistics, and where the tests run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from services.dashboard.analysis import align_closes, stationarity_rows
from shared.bargrid import carried_closes
from shared.schemas import Bar


def bar(start: int, close: float) -> Bar:
    return Bar(start, close, close, close, close, 1.0, close, 1)


def test_closes_are_carried_over_bars_without_trades_and_start_when_both_traded() -> None:
    a = [bar(1000, 10.0), bar(2000, 11.0), bar(4000, 12.0)]
    b = [bar(2000, 5.0), bar(3000, 6.0), bar(5000, 7.0)]
    times, close_a, close_b = align_closes(a, b, 1000)
    assert times.tolist() == [2000, 3000, 4000, 5000]
    assert close_a.tolist() == [11.0, 11.0, 12.0, 12.0]
    assert close_b.tolist() == [5.0, 6.0, 6.0, 7.0]


def test_intervals_where_neither_leg_traded_are_bars_too_as_the_worker_makes_them() -> None:
    a = [bar(60_000, 10.0), bar(120_000, 11.0), bar(360_000, 12.0)]
    b = [bar(60_000, 5.0), bar(120_000, 6.0), bar(360_000, 7.0)]
    times, close_a, close_b = align_closes(a, b, 60_000)
    assert times.tolist() == [60_000, 120_000, 180_000, 240_000, 300_000, 360_000]
    assert close_a.tolist() == [10.0, 11.0, 11.0, 11.0, 11.0, 12.0]
    assert close_b.tolist() == [5.0, 6.0, 6.0, 6.0, 6.0, 7.0]


def test_nothing_to_align() -> None:
    times, close_a, close_b = align_closes([bar(1000, 1.0)], [], 1000)
    assert len(times) == len(close_a) == len(close_b) == 0
    times, _, _ = align_closes([], [], 1000)
    assert times.dtype == np.int64 and len(times) == 0


def test_the_dashboard_and_a_view_fill_carry_the_same_closes() -> None:
    """History mode's pair series equals, leg by leg, what the worker's view fill puts in its
    matrix from the same stored bars (`carried_closes`), and pandas' forward fill on the grid."""
    rng = np.random.default_rng(7)
    tf = 60_000
    legs = []
    for _ in range(2):
        starts = np.sort(rng.choice(np.arange(10, 2_000), size=400, replace=False)) * tf
        closes = rng.uniform(90, 110, size=400).round(2)
        legs.append(pd.DataFrame({"start": starts, "close": closes}))
    bars_of = [[bar(int(t), float(c)) for t, c in zip(f.start, f.close, strict=True)] for f in legs]
    times, close_a, close_b = align_closes(*bars_of, tf)
    first, end = int(times[0]), int(times[-1]) + tf
    assert np.all(np.diff(times) == tf)
    for frame, closes in zip(legs, (close_a, close_b), strict=True):
        filled = carried_closes(frame, first, end, tf)
        assert closes.tolist() == filled[len(filled) - len(times) :]
        grid = pd.Index(range(int(frame.start.iloc[0]), end, tf))
        reference = frame.set_index("start")["close"].reindex(grid).ffill()
        assert closes.tolist() == reference.loc[first:].tolist()
    assert carried_closes(legs[0].iloc[:0], 0, 10 * tf, tf) == []


def test_stationarity_runs_on_spaced_bars_and_always_the_last() -> None:
    rows = stationarity_rows(1000, 60)
    assert rows[-1] and rows[59] and rows[119] and rows.sum() == math.ceil(1000 / 60)
    long = stationarity_rows(86_400, 60)
    assert long[-1] and long.sum() <= 201
    assert np.flatnonzero(stationarity_rows(5, 60)).tolist() == [4]
    assert stationarity_rows(0, 60).size == 0
    assert np.flatnonzero(stationarity_rows(86_400, 60, spaced=False)).tolist() == [86_399]
