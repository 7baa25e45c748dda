"""The bar in progress of a view and its provisional z-score (no I/O).

Between two closes the page draws each leg's bar so far and the z-score at the last prices, so a
trader sees the spread move before the bar closes. The provisional z-score uses the hedge ratio
and the band of the last closed window: nothing is estimated on an unfinished bar, and nothing
provisional reaches a stored series, an export or an alert rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.analytics.bars import BarAccumulator
from shared.schemas import Forming, PairStat


@dataclass(frozen=True, slots=True)
class LegNow:
    """One leg as the worker holds it now."""

    bar: BarAccumulator | None
    """Its newest bar not closed yet (None: none open)."""
    last_close: float | None
    """Its newest closed bar's close (None: it never closed a bar)."""
    trade_ts: int
    recv_ts: int
    """Event and receive time of its newest trade read (0: none yet)."""


def provisional_z(a_close: float, b_close: float, last: PairStat | None) -> float | None:
    """The z-score of the spread at these prices against the last closed window's hedge ratio
    and band; None without a usable band."""
    if last is None or not math.isfinite(last.spread_std) or last.spread_std <= 0:
        return None
    z = (a_close - last.beta * b_close - last.spread_mean) / last.spread_std
    return z if math.isfinite(z) else None


def _leg_bar(leg: LegNow, start: int) -> BarAccumulator | None:
    """The leg's bar of the interval at `start`; an older open bar or a closed one is carried
    at its last price (volume 0), as an interval without trades closes."""
    if leg.bar is not None and leg.bar.start == start:
        return leg.bar
    price = leg.bar.close if leg.bar is not None else leg.last_close
    if price is None:
        return None
    return BarAccumulator(start, price, price, price, price, 0.0, 0.0, 0)


def forming(a: LegNow, b: LegNow, last: PairStat | None) -> Forming | None:
    """The view's interval in progress (the newest either leg has an open bar in); None when
    neither has an open bar or a leg has no price yet."""
    starts = [leg.bar.start for leg in (a, b) if leg.bar is not None]
    if not starts:
        return None
    start = max(starts)
    bar_a, bar_b = _leg_bar(a, start), _leg_bar(b, start)
    if bar_a is None or bar_b is None:
        return None
    newest = max((a, b), key=lambda leg: leg.trade_ts)
    usable = last if last is not None and last.ts < start else None
    return Forming(
        start=start, ts=newest.trade_ts, recv_ts=newest.recv_ts,
        a_open=bar_a.open, a_high=bar_a.high, a_low=bar_a.low, a_close=bar_a.close,
        a_volume=bar_a.volume, a_trades=bar_a.trades,
        b_open=bar_b.open, b_high=bar_b.high, b_low=bar_b.low, b_close=bar_b.close,
        b_volume=bar_b.volume, b_trades=bar_b.trades,
        beta=usable.beta if usable is not None else None,
        zscore=provisional_z(bar_a.close, bar_b.close, usable),
    )  # fmt: skip
