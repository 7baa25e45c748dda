"""Dashboard test helpers: contract-level Redis fixtures built from the recorded trades, the
dashboard as a real process, and a headless Chromium (Debian's chromium + chromedriver)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

from shared import keys
from shared.schemas import Bar, PairStat
from shared.views import PairView
from testkit.browser import Browser as Browser
from testkit.browser import DashboardProcess as DashboardProcess
from testkit.browser import GraphNotDrawn as GraphNotDrawn
from testkit.browser import dashboard_process as dashboard_process
from testkit.recorded import market_trades

# Contract-level data: real recorded trades -> bars -> pair statistics ------------------------


def recorded_bars(symbol: str, tf_ms: int = 1_000) -> list[Bar]:
    """Bars of one symbol from the recorded trades (test fixture, not the worker's code)."""
    rows = [t for t in market_trades() if t.symbol.upper() == symbol]
    frame = pd.DataFrame(
        {
            "ts": [t.ts for t in rows],
            "price": [float(t.price) for t in rows],
            "size": [float(t.size) for t in rows],
        }
    )
    frame["start"] = frame["ts"] // tf_ms * tf_ms
    frame["notional"] = frame["price"] * frame["size"]
    grouped = frame.groupby("start")
    out = grouped.agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"),
        close=("price", "last"), volume=("size", "sum"), notional=("notional", "sum"),
        trades=("price", "count"),
    ).reset_index()  # fmt: skip
    return [
        Bar(int(r.start), float(r.open), float(r.high), float(r.low), float(r.close),
            float(r.volume), float(r.notional / r.volume), int(r.trades))
        for r in out.itertuples(index=False)
    ]  # fmt: skip


def rolling_stats(bars_a: Sequence[Bar], bars_b: Sequence[Bar], window: int) -> list[PairStat]:
    """Plausible PairStat records (rolling OLS) on the common bar times, for fixtures only."""
    b_by_start = {bar.start: bar for bar in bars_b}
    common = [(bar, b_by_start[bar.start]) for bar in bars_a if bar.start in b_by_start]
    out = []
    for i in range(2, len(common)):
        chunk = common[max(0, i - window + 1) : i + 1]
        a = np.array([x.close for x, _ in chunk])
        b = np.array([y.close for _, y in chunk])
        beta, alpha = np.polyfit(b, a, 1) if np.ptp(b) > 0 else (0.0, float(a.mean()))
        spreads = a - beta * b
        mean, std = float(spreads.mean()), float(spreads.std(ddof=1)) or 1e-9
        returns_a, returns_b = np.diff(np.log(a)), np.diff(np.log(b))
        with np.errstate(all="ignore"):
            corr = float(np.corrcoef(returns_a, returns_b)[0, 1]) if len(a) > 2 else 0.0
        corr = corr if np.isfinite(corr) else 0.0
        out.append(
            PairStat(
                ts=chunk[-1][0].start, price_a=float(a[-1]), price_b=float(b[-1]),
                alpha=float(alpha), beta=float(beta), spread=float(spreads[-1]),
                zscore=(float(spreads[-1]) - mean) / std, corr=corr, window=window,
                n=len(chunk), method="ols", spread_mean=mean, spread_std=std,
                adf_stat=-3.2 if i % 10 == 0 else None, adf_pvalue=0.02 if i % 10 == 0 else None,
                half_life=12.5 if i % 10 == 0 else None,
                coint_pvalue=0.04 if i % 10 == 0 else None,
            )
        )  # fmt: skip
    return out


@dataclass
class Seeded:
    bars_a: list[Bar]
    bars_b: list[Bar]
    stats: list[PairStat]


def seed_pair(
    client: redis.Redis,
    view: PairView,
    default_window: int,
    *,
    bars: int | None = None,
    stats: bool = True,
) -> Seeded:
    """Fill `bars:<tf>:<A|B>`, the view's analytics stream and latest hash from the recordings."""
    tf_ms = {"1s": 1_000, "1m": 60_000, "5m": 300_000}[view.tf]
    bars_a, bars_b = recorded_bars(view.a, tf_ms), recorded_bars(view.b, tf_ms)
    if bars is not None:
        bars_a, bars_b = bars_a[:bars], bars_b[:bars]
    seeded = rolling_stats(bars_a, bars_b, view.window) if stats else []
    pipe = client.pipeline(transaction=False)
    for bar in bars_a:
        pipe.xadd(keys.bars(view.tf, view.a), bar.to_fields())
    for bar in bars_b:
        pipe.xadd(keys.bars(view.tf, view.b), bar.to_fields())
    for stat in seeded:
        pipe.xadd(view.stream_key(default_window), stat.to_fields())
    if seeded:
        pipe.delete(view.latest_key(default_window))
        pipe.hset(view.latest_key(default_window), mapping=seeded[-1].to_fields())
    pipe.execute()
    return Seeded(bars_a, bars_b, seeded)
