"""Aligning two legs' closes for the shared batch statistics, and where the tests run."""

from __future__ import annotations

import math

import numpy as np

from services.dashboard.analysis import align_closes, stationarity_rows
from shared.schemas import Bar


def bar(start: int, close: float) -> Bar:
    return Bar(start, close, close, close, close, 1.0, close, 1)


def test_closes_are_carried_over_bars_without_trades_and_start_when_both_traded() -> None:
    a = [bar(1000, 10.0), bar(2000, 11.0), bar(4000, 12.0)]
    b = [bar(2000, 5.0), bar(3000, 6.0), bar(5000, 7.0)]
    times, close_a, close_b = align_closes(a, b)
    assert times.tolist() == [2000, 3000, 4000, 5000]
    assert close_a.tolist() == [11.0, 11.0, 12.0, 12.0]
    assert close_b.tolist() == [5.0, 6.0, 6.0, 7.0]


def test_nothing_to_align() -> None:
    times, close_a, close_b = align_closes([bar(1000, 1.0)], [])
    assert len(times) == len(close_a) == len(close_b) == 0


def test_stationarity_runs_on_spaced_bars_and_always_the_last() -> None:
    rows = stationarity_rows(1000, 60)
    assert rows[-1] and rows[59] and rows[119] and rows.sum() == math.ceil(1000 / 60)
    long = stationarity_rows(86_400, 60)
    assert long[-1] and long.sum() <= 201
    assert np.flatnonzero(stationarity_rows(5, 60)).tolist() == [4]
    assert stationarity_rows(0, 60).size == 0
