"""shared.pairstats against statsmodels and numpy on the recorded data, and its edge cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint

from shared.pairstats import (
    MIN_BARS,
    STATIONARITY_MIN_BARS,
    adf,
    adf_due,
    adf_phase,
    coint_pvalue,
    half_life,
    kalman_hedge,
    pair_stat_table,
    pair_stats,
    pair_stats_frame,
    stationarity,
    window_stats,
)
from testkit.recorded import recorded_ticks
from tests.analytics_support import SYMBOLS, aligned_closes


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    ticks = recorded_ticks()
    newest = max(t.ts for t in ticks)
    return aligned_closes(ticks, "1s", newest - newest % 1000)


def legs(closes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return closes[SYMBOLS[0]].to_numpy(), closes[SYMBOLS[1]].to_numpy()


@pytest.mark.parametrize("window", [3, 30, 60, 500])
def test_ols_statistics_equal_statsmodels_and_numpy(closes: pd.DataFrame, window: int) -> None:
    a, b = legs(closes)
    stats = pair_stats(closes["start"], a, b, window=window)
    assert len(stats) == len(closes) - (MIN_BARS - 1)
    for i, stat in enumerate(stats, start=MIN_BARS - 1):
        n = min(i + 1, window)
        x, y = a[i - n + 1 : i + 1], b[i - n + 1 : i + 1]
        assert (stat.n, stat.window, stat.method) == (n, window, "ols")
        if y.min() == y.max():
            assert math.isnan(stat.beta) and math.isnan(stat.zscore)
            continue
        alpha, beta = sm.OLS(x, sm.add_constant(y)).fit().params
        # Near zero, relative to the price level (a window where A moves exactly with B).
        assert stat.beta == pytest.approx(beta, rel=1e-9, abs=1e-11 * x.mean() / y.mean())
        assert stat.alpha == pytest.approx(alpha, rel=1e-9, abs=1e-13 * x.mean())
        spread = x - stat.beta * y
        assert stat.spread_mean == pytest.approx(stat.alpha, rel=1e-12)
        with np.errstate(all="ignore"):
            zscore = (spread[-1] - spread.mean()) / spread.std(ddof=1)
            corr = np.corrcoef(np.diff(np.log(x)), np.diff(np.log(y)))[0, 1]
        if spread.std(ddof=1) > 1e-10 * np.abs(x).mean():
            # The reference itself loses digits when the spread is tiny next to the prices
            # (x - beta * y cancels): allow that rounding, never less than 1e-8.
            rounding = 100 * np.finfo(float).eps * x.mean() / spread.std(ddof=1)
            assert stat.zscore == pytest.approx(zscore, rel=1e-8, abs=max(1e-8, rounding))
        else:
            assert math.isnan(stat.zscore)
        assert stat.corr == pytest.approx(corr, rel=1e-8, abs=1e-8, nan_ok=True)


def test_stationarity_equals_statsmodels(closes: pd.DataFrame) -> None:
    a, b = legs(closes)
    for end in (40, 100, len(a)):
        x, y = a[end - 60 if end > 60 else 0 : end], b[end - 60 if end > 60 else 0 : end]
        beta = float(sm.OLS(x, sm.add_constant(y)).fit().params[1])
        got = stationarity(x, y, beta)
        spread = x - beta * y
        expected = adfuller(spread, regression="c", autolag="AIC", result_object=True)
        assert (got.adf_stat, got.adf_pvalue) == (expected.statistic, expected.pvalue)
        lam = sm.OLS(np.diff(spread), sm.add_constant(spread[:-1])).fit().params[1]
        assert lam < 0 and got.half_life == pytest.approx(-math.log(2) / lam, rel=1e-9)
        assert got.coint_pvalue == coint(x, y, trend="c", autolag="aic")[1]


def test_huber_equals_statsmodels_rlm(closes: pd.DataFrame) -> None:
    a, b = legs(closes)
    stats = pair_stats(closes["start"], a, b, window=40, method="huber", start=100, stop=104)
    for i, stat in enumerate(stats, start=100):
        x, y = a[i - 39 : i + 1], b[i - 39 : i + 1]
        params = sm.RLM(x, sm.add_constant(y), M=sm.robust.norms.HuberT()).fit().params
        np.testing.assert_allclose([stat.alpha, stat.beta], params, rtol=1e-12)


def test_kalman_is_scale_free_and_tends_to_ols_when_the_hedge_cannot_move(
    closes: pd.DataFrame,
) -> None:
    a, b = legs(closes)
    x, y = a[-60:], b[-60:]
    alpha, beta = kalman_hedge(x, y, 1e-3)
    assert kalman_hedge(10 * x, y, 1e-3)[1] == pytest.approx(10 * beta, rel=1e-9)
    assert kalman_hedge(x, 4 * y, 1e-3)[1] == pytest.approx(beta / 4, rel=1e-9)
    assert kalman_hedge(x + 100.0, y, 1e-3)[0] == pytest.approx(alpha + 100.0, rel=1e-9)
    ols_alpha, ols_beta = sm.OLS(x, sm.add_constant(y)).fit().params
    still_alpha, still_beta = kalman_hedge(x, y, 1e-15)
    assert still_beta == pytest.approx(ols_beta, rel=1e-4)
    assert still_alpha == pytest.approx(ols_alpha, rel=1e-4)
    assert abs(beta - ols_beta) > 1e-3 * abs(ols_beta), "with delta 1e-3 the hedge moves"


@pytest.mark.parametrize("seed", range(4))
def test_kalman_follows_a_change_of_hedge_that_ols_averages(seed: int) -> None:
    rng = np.random.default_rng(seed)
    b = 100 + np.cumsum(rng.normal(0, 2, 120))
    after = np.arange(120) >= 60
    a = np.where(after, 50 - b[60] + 2 * b, 50 + b) + rng.normal(0, 0.2, 120)
    kalman = kalman_hedge(a, b, 1e-2)[1]
    ols = float(sm.OLS(a, sm.add_constant(b)).fit().params[1])
    assert abs(kalman - 2.0) < abs(ols - 2.0) / 2


def test_undefined_statistics_are_nan_not_errors() -> None:
    flat = np.full((1, 30), 50.0)
    moving = 100 + np.arange(30.0)[None, :]
    for method in ("ols", "kalman", "huber"):
        result = window_stats(moving, flat, method)
        assert math.isnan(result.beta[0]) and math.isnan(result.zscore[0]), method
        assert math.isnan(result.corr[0])
    exact = window_stats(2 * moving, moving, "ols")
    assert exact.beta[0] == pytest.approx(2.0) and exact.spread_std[0] == pytest.approx(0, abs=1e-9)
    assert adf(np.full(40, 3.0)) is None
    assert adf(np.arange(STATIONARITY_MIN_BARS - 1, dtype=float)) is None
    assert half_life(np.cumsum(np.ones(40)) ** 2) is None
    assert coint_pvalue(moving[0], flat[0]) is None
    collinear = coint_pvalue(2 * moving[0] + 1, moving[0])
    assert collinear == 0.0
    assert stationarity(moving[0], moving[0], math.nan).adf_pvalue is None


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        pair_stats([1, 2, 3], [1.0, 2.0, 3.0], [1.0, 2.0], window=3)
    with pytest.raises(ValueError, match="above zero"):
        pair_stats([1, 2, 3], [1.0, 0.0, 3.0], [1.0, 2.0, 3.0], window=3)
    with pytest.raises(ValueError, match="window must be at least 3"):
        pair_stats([1, 2, 3], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], window=2)
    with pytest.raises(ValueError, match="at least 3 bars"):
        window_stats(np.ones((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="not one of"):
        window_stats(np.ones((1, 5)), np.ones((1, 5)), "median")  # type: ignore[arg-type]
    assert pair_stats([1, 2], [1.0, 2.0], [1.0, 2.0], window=3) == []


def test_frame_for_a_csv_analysis(closes: pd.DataFrame) -> None:
    a, b = legs(closes)
    frame = pair_stats_frame(closes["start"], a, b, window=30, adf_every=50)
    assert len(frame) == len(closes) - 2
    assert list(frame.columns[:4]) == ["ts", "price_a", "price_b", "alpha"]
    with_adf = frame.dropna(subset=["adf_pvalue"])
    assert with_adf.index.tolist() == [47, 97, 147, len(frame) - 1]
    with pytest.raises(ValueError, match="adf_every"):
        pair_stats_frame(closes["start"], a, b, window=30, adf_every=-1)


def test_adf_schedule_is_tied_to_bar_time_and_spread_by_view() -> None:
    every = 10
    due = [t for t in range(0, 100_000, 1_000) if adf_due(t, 1_000, every, 3)]
    assert len(due) == 10 and all(b - a == 10_000 for a, b in itertools.pairwise(due))
    phases = {adf_phase(f"BTCUSDT-X{i}USDT:1s:w60:ols", every) for i in range(50)}
    assert len(phases) == every
    assert adf_phase("A-B:1s:w60:ols", every) == adf_phase("A-B:1s:w60:ols", every)


@pytest.mark.parametrize("method", ["ols", "kalman"])
def test_the_table_of_a_series_equals_each_window_on_its_own(
    closes: pd.DataFrame, method: str
) -> None:
    """The columns of a series (its windows in chunks, its log returns computed once) hold what
    `window_stats` gives each window alone, whatever the chunk size."""
    a, b = legs(closes)
    window = 40
    table = pair_stat_table(closes["start"], a, b, window=window, method=method)  # type: ignore[arg-type]
    chunked = pair_stat_table(
        closes["start"],
        a,
        b,
        window=window,
        method=method,
        chunk_values=7 * window,  # type: ignore[arg-type]
    )
    assert len(table) == len(chunked) == len(a) - (MIN_BARS - 1)
    names = ("alpha", "beta", "spread", "spread_mean", "spread_std", "zscore", "corr")
    for name in names:
        np.testing.assert_array_equal(table.column(name), chunked.column(name))
    for position, i in enumerate(range(MIN_BARS - 1, len(a))):
        lo = max(0, i - window + 1)
        alone = window_stats(a[None, lo : i + 1], b[None, lo : i + 1], method)  # type: ignore[arg-type]
        for name in names:
            expected = float(getattr(alone, name)[0])
            got = float(table.column(name)[position])
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-12, nan_ok=True), (i, name)
    assert table[-1] == pair_stats(closes["start"], a, b, window=window, method=method)[-1]  # type: ignore[arg-type]
