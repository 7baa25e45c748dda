"""Streaming bars, the event clock and the close matrix: pure code, no I/O."""

from __future__ import annotations

import numpy as np
import pytest

from services.analytics.bars import BarEngine
from services.analytics.clock import EventClock
from services.analytics.series import CloseMatrix
from shared.schemas import Bar

SYMBOLS = ("AAA", "BBB")


def engine() -> BarEngine:
    return BarEngine(SYMBOLS, ("1s", "5s"))


def closed_bars(engine: BarEngine, horizon: int) -> dict[tuple[str, int, int], Bar | None]:
    return {
        (interval.tf, interval.start, symbol): bar
        for interval in engine.close_until(horizon)
        for symbol, bar in enumerate(interval.bars)
    }


def test_ohlcv_vwap_and_carry_of_quiet_intervals() -> None:
    bars = engine()
    for ts, price, size in [(1000, 10.0, 1.0), (1200, 12.0, 1.0), (1900, 9.0, 2.0)]:
        assert bars.add_tick(0, ts, price, size)
    assert bars.add_tick(0, 3500, 11.0, 1.0)
    assert bars.add_tick(1, 2000, 5.0, 1.0)
    out = closed_bars(bars, 3000)
    first = out[("1s", 1000, 0)]
    assert first == Bar(1000, 10.0, 12.0, 9.0, 9.0, 4.0, (10 + 12 + 18) / 4, 3)
    assert out[("1s", 1000, 1)] is None, "a symbol that never traded gets no bar"
    assert out[("1s", 2000, 0)] == Bar(2000, 9.0, 9.0, 9.0, 9.0, 0.0, 9.0, 0)
    assert out[("1s", 2000, 1)] == Bar(2000, 5.0, 5.0, 5.0, 5.0, 1.0, 5.0, 1)
    assert ("1s", 3000, 0) not in out, "the bar ending at the horizon + 1 s is still open"
    out = closed_bars(bars, 6000)
    assert out[("1s", 3000, 0)].trades == 1  # type: ignore[union-attr]
    assert out[("1s", 4000, 1)] == Bar(4000, 5.0, 5.0, 5.0, 5.0, 0.0, 5.0, 0)
    coarse = out[("5s", 0, 0)]
    assert coarse == Bar(0, 10.0, 12.0, 9.0, 11.0, 5.0, (10 + 12 + 18 + 11) / 5, 4)
    assert out[("5s", 0, 1)] == Bar(0, 5.0, 5.0, 5.0, 5.0, 1.0, 5.0, 1)


def test_late_ticks_are_counted_not_merged_and_open_bars_take_out_of_order_ticks() -> None:
    bars = engine()
    bars.add_tick(0, 1500, 10.0, 1.0)
    bars.add_tick(0, 2500, 11.0, 1.0)
    assert bars.add_tick(0, 1700, 12.0, 1.0), "its bar is still open"
    closed_bars(bars, 2000)
    assert not bars.add_tick(0, 1800, 99.0, 1.0)
    assert bars.late == 1
    out = closed_bars(bars, 10_000)
    assert out[("5s", 0, 0)].high == 12.0  # type: ignore[union-attr]
    assert out[("5s", 0, 0)].trades == 3  # type: ignore[union-attr]


def test_seeded_history_is_not_counted_twice_in_coarser_bars() -> None:
    bars = engine()
    coarse = Bar(0, 10.0, 13.0, 9.0, 12.0, 3.0, 11.0, 3)
    bars.seed(0, 1, coarse)
    bars.seed(0, 0, Bar(3000, 12.0, 12.0, 12.0, 12.0, 1.0, 12.0, 1))
    bars.seed(0, 0, Bar(4000, 12.0, 14.0, 12.0, 14.0, 2.0, 13.0, 2), rolls=True)
    bars.add_tick(0, 4500, 8.0, 1.0)
    out = closed_bars(bars, 5000)
    assert out[("5s", 0, 0)] == Bar(0, 10.0, 14.0, 8.0, 8.0, 6.0, (33 + 26 + 8) / 6, 6)
    assert out[("1s", 4000, 0)] == Bar(4000, 12.0, 14.0, 8.0, 8.0, 3.0, (26 + 8) / 3, 3)


def test_a_long_pause_publishes_only_the_bars_the_statistics_can_see() -> None:
    bars = engine()
    bars.add_tick(0, 500, 10.0, 1.0)
    for book in bars.books:
        book.keep = 4
    out = closed_bars(bars, 1_000_000)
    fine = sorted(start for tf, start, symbol in out if tf == "1s" and symbol == 0)
    assert fine[0] == 0 and fine[-4:] == [996_000, 997_000, 998_000, 999_000]
    assert len(fine) == 5
    assert bars.finest.skipped == 995


def test_event_clock_holds_for_backlogs_and_moves_on_when_nothing_trades() -> None:
    clock = EventClock(lateness_ms=500)
    assert clock.horizon(0.0) is None
    clock.observe(10_000, wall_ms=0.0)
    assert clock.horizon(100.0) == 9_500
    assert clock.horizon(100.0, held_at=8_000) == 7_500
    assert clock.horizon(499.0) == 9_500
    assert clock.horizon(2_000.0) == 10_000 + 2_000 - 500
    slow = EventClock(lateness_ms=500)
    for second in range(12):
        slow.observe(second * 100, wall_ms=second * 1000.0)
    assert slow.rate == pytest.approx(0.1)
    assert slow.horizon(11_000.0 + 5_000.0) == 1_100 + 500 - 500
    fast = EventClock(lateness_ms=500)
    for second in range(12):
        fast.observe(second * 50_000, wall_ms=second * 1000.0)
    assert fast.rate == 1.0, "idle time never runs faster than live"


def test_event_clock_waits_for_the_slowest_live_symbol_within_the_bound() -> None:
    clock = EventClock(lateness_ms=500, max_wait_ms=2_000)
    clock.observe(10_000, 0.0, symbol=0)
    clock.observe(10_000, 0.0, symbol=1)
    assert clock.horizon(0.0) == 9_500
    clock.observe(12_000, 100.0, symbol=0)  # symbol 1 lags: nothing newer from it
    assert clock.horizon(100.0) == 10_000
    assert clock.horizon(1_500.0) == 10_000
    clock.observe(12_400, 1_600.0, symbol=0)
    assert clock.horizon(1_600.0) == 10_000
    assert clock.horizon(2_100.0) == 11_500  # 2 s after the fastest allowed 11,500
    clock.observe(12_300, 2_200.0, symbol=1)  # it catches up
    assert clock.horizon(2_200.0) == 11_900
    quiet = EventClock(lateness_ms=500, max_wait_ms=2_000)
    quiet.observe(5_000, 0.0, symbol=1)
    quiet.observe(20_000, 6_000.0, symbol=0)
    assert quiet.horizon(6_000.0) == 19_500, "a symbol silent for 5 s holds nothing"
    never = EventClock(lateness_ms=500, max_wait_ms=0)
    never.observe(10_000, 0.0, symbol=1)
    never.observe(12_000, 100.0, symbol=0)
    assert never.horizon(100.0) == 11_500, "BAR_MAX_WAIT_MS=0: bars close on the fastest"


def test_close_matrix_aligns_grows_and_backfills() -> None:
    matrix = CloseMatrix(3, capacity=4, tf_ms=1000)
    for step in range(10):
        matrix.append(step * 1000, [float(step), None if step < 6 else 100.0 + step, 7.0])
    assert matrix.count.tolist() == [4, 4, 4]
    np.testing.assert_array_equal(matrix.window(np.array([0, 1]), 3), [[7, 8, 9], [107, 108, 109]])
    matrix.grow(8)
    assert matrix.capacity == 8 and matrix.count.tolist() == [4, 4, 4]
    assert matrix.oldest_start(0) == 6_000
    assert matrix.backfill(0, [3.0, 4.0, 5.0]) == 3
    assert matrix.backfill(1, [1.0] * 20) == 4
    np.testing.assert_array_equal(matrix.row(0, 7), [3, 4, 5, 6, 7, 8, 9])
    assert matrix.count.tolist() == [7, 8, 4]
    for step in range(10, 30):
        matrix.append(step * 1000, [float(step), 1.0, 7.0])
    np.testing.assert_array_equal(matrix.row(0, 3), [27, 28, 29])
    assert matrix.count.tolist() == [8, 8, 8]
    assert matrix.last_start == 29_000
