"""The worker on the recorded Binance trades: its bars equal pandas resampling of the same ticks and
every statistic equals a batch computation with statsmodels/numpy on the same bars."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint

from shared import keys
from shared.config import timeframe_ms
from shared.pairstats import pair_stats
from shared.schemas import PairStat, Tick
from shared.views import PairView
from testkit.polling import eventually
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.analytics_support import (
    SYMBOLS,
    aligned_closes,
    expected_bars,
    running_worker,
    stream_bars,
    stream_stats,
)

WINDOW = 60
CLOSING_TS = 1_765_892_701_000
"""13:45:01: a last trade per symbol after the recording closes its 1m and 5m bars."""


def closing_ticks() -> list[Tick]:
    last = {t.symbol: t for t in recorded_ticks()}
    return [replace(last[s], ts=CLOSING_TS, trade_id=last[s].trade_id + 1) for s in SYMBOLS]


def last_start(tf: str) -> int:
    """Start of the last bar that the recorded trades fill (the closing ticks are after it)."""
    newest = max(t.ts for t in recorded_ticks())
    return newest - newest % timeframe_ms(tf)


def check_against_statsmodels(stats: list[PairStat], closes: pd.DataFrame, window: int) -> int:
    """Each entry against OLS, numpy and statsmodels on its window; how many ADF entries."""
    index = {int(start): i for i, start in enumerate(closes["start"])}
    a_all = closes[SYMBOLS[0]].to_numpy()
    b_all = closes[SYMBOLS[1]].to_numpy()
    with_adf = 0
    for stat in stats:
        i = index[stat.ts]
        n = min(i + 1, window)
        assert stat.n == n and stat.window == window
        a, b = a_all[i - n + 1 : i + 1], b_all[i - n + 1 : i + 1]
        assert (stat.price_a, stat.price_b) == (a[-1], b[-1])
        alpha, beta = sm.OLS(a, sm.add_constant(b)).fit().params
        assert stat.beta == pytest.approx(beta, rel=1e-9)
        assert stat.alpha == pytest.approx(alpha, rel=1e-9)
        spread = a - stat.beta * b
        assert stat.spread == pytest.approx(spread[-1], rel=1e-12)
        assert stat.spread_mean == pytest.approx(spread.mean(), rel=1e-12)
        assert stat.spread_std == pytest.approx(spread.std(ddof=1), rel=1e-9)
        zscore = (spread[-1] - spread.mean()) / spread.std(ddof=1)
        assert stat.zscore == pytest.approx(zscore, rel=1e-8, abs=1e-8)
        corr = np.corrcoef(np.diff(np.log(a)), np.diff(np.log(b)))[0, 1]
        assert stat.corr == pytest.approx(corr, rel=1e-8, abs=1e-8)
        if stat.adf_pvalue is None:
            continue
        with_adf += 1
        adf = adfuller(spread, regression="c", autolag="AIC", result_object=True)
        assert (stat.adf_stat, stat.adf_pvalue) == pytest.approx(
            (adf.statistic, adf.pvalue), rel=1e-9
        )
        lam = sm.OLS(np.diff(spread), sm.add_constant(spread[:-1])).fit().params[1]
        if lam < 0:
            assert stat.half_life == pytest.approx(-math.log(2) / lam, rel=1e-9)
        else:
            assert stat.half_life is None
        assert stat.coint_pvalue == pytest.approx(
            coint(a, b, trend="c", autolag="aic")[1], rel=1e-9
        )
    return with_adf


async def test_bars_and_statistics_equal_pandas_and_statsmodels(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    ticks = [*recorded_ticks(), *closing_ticks()]
    view = PairView(*SYMBOLS, "1s", WINDOW)
    async with running_worker(
        redis_url, sqlite_path=tmp_path / "none.db", window=WINDOW, adf_every=7
    ) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        for lo in range(0, len(ticks), 2_000):
            publish(sync_redis, ticks[lo : lo + 2_000])
            await asyncio.sleep(0.01)

        def caught_up() -> bool:
            latest = sync_redis.hget(view.latest_key(WINDOW), "ts")
            bars = sync_redis.xlen(keys.bars("5m", SYMBOLS[1]))
            return latest is not None and int(latest) >= last_start("1s") and bars > 0

        assert await eventually(caught_up, within=60), "the worker did not reach the last bar"
    for tf in ("1s", "1m", "5m"):
        for symbol in SYMBOLS:
            got = stream_bars(sync_redis, tf, symbol)
            got = got[got["start"] <= last_start(tf)].reset_index(drop=True)
            expected = expected_bars(ticks, symbol, tf, last_start(tf))
            assert len(got) == len(expected) > 0, (tf, symbol)
            for column in ("start", "trades", "open", "high", "low", "close"):
                np.testing.assert_array_equal(got[column], expected[column], err_msg=column)
            for column in ("volume", "vwap"):
                np.testing.assert_allclose(got[column], expected[column], rtol=1e-12)
    stats = stream_stats(sync_redis, view.stream_key(WINDOW))
    stats = [s for s in stats if s.ts <= last_start("1s")]
    closes = aligned_closes(ticks, "1s", last_start("1s"))
    assert [s.ts for s in stats] == closes["start"].tolist()[2:]
    assert check_against_statsmodels(stats, closes, WINDOW) >= (len(stats) - 20) // 7
    batch = pair_stats(closes["start"], closes[SYMBOLS[0]], closes[SYMBOLS[1]], window=WINDOW)
    for live, offline in zip(stats, batch, strict=True):
        assert live.ts == offline.ts
        for name in ("alpha", "beta", "zscore", "corr", "spread_mean", "spread_std"):
            assert getattr(live, name) == pytest.approx(getattr(offline, name), rel=1e-9, abs=1e-12)
    minute = stream_stats(sync_redis, keys.analytics(*SYMBOLS, "1m"))
    minute_closes = aligned_closes(ticks, "1m", last_start("1m"))
    minute = [s for s in minute if s.ts <= last_start("1m")]
    assert len(minute) == len(minute_closes) - 2 > 0
    check_against_statsmodels(minute, minute_closes, WINDOW)
