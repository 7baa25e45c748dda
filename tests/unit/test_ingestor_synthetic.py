"""The synthetic market: seeded, and cointegrated with the configured hedge ratio (checked with
statsmodels on the generated trades)."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint

from services.ingestor.binance import TickRow
from services.ingestor.synthetic import Market
from shared.config import load_settings
from shared.schemas import DECIMAL_PATTERN

START = 1_765_892_498_698


def market(**changes: object) -> Market:
    values: dict[str, object] = {
        "symbols": ("BTCUSDT", "ETHUSDT"), "seed": 7, "hedge_ratio": 1.5,
        "mean_reversion": 0.02, "noise": 0.05, "tick_rate": 20.0,
    }  # fmt: skip
    merged = {**values, **changes}
    merged.setdefault("groups", (merged["symbols"],))
    return Market(**merged)  # type: ignore[arg-type]


def second_closes(trades: list[TickRow]) -> pd.DataFrame:
    """Last price of each symbol in each second, carried forward: what 1 s bars would close at."""
    frame = pd.DataFrame(trades, columns=TickRow._fields)
    frame["price"] = frame["price"].astype(float)
    frame["second"] = frame["ts"] // 1000
    closes = frame.pivot_table(index="second", columns="symbol", values="price", aggfunc="last")
    return closes.ffill().dropna()


def test_the_same_seed_gives_the_same_trades_and_another_seed_others() -> None:
    first = list(itertools.islice(market().trades(START), 500))
    again = list(itertools.islice(market().trades(START), 500))
    other = list(itertools.islice(market(seed=8).trades(START), 500))
    assert first == again
    assert [t.price for t in first] != [t.price for t in other]


def test_trades_are_well_formed_ticks_with_contiguous_ids_per_symbol() -> None:
    trades = list(itertools.islice(market().trades(START), 2_000))
    assert trades[0].ts == START
    assert [t.ts for t in trades] == sorted(t.ts for t in trades)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = [t.trade_id for t in trades if t.symbol == symbol]
        assert ids == list(range(START * 1000, START * 1000 + len(ids)))
        assert 800 < len(ids) < 1_200
    assert all(DECIMAL_PATTERN.match(t.price) and DECIMAL_PATTERN.match(t.size) for t in trades)
    assert {t.side for t in trades} == {"buy", "sell"}
    seconds = (trades[-1].ts - START) / 1000
    assert 2_000 / seconds == pytest.approx(20, rel=0.1)


@pytest.mark.parametrize(("hedge_ratio", "mean_reversion"), [(1.5, 0.02), (0.7, 0.05)])
def test_the_pair_is_cointegrated_with_the_configured_hedge_ratio(
    hedge_ratio: float, mean_reversion: float
) -> None:
    trades = list(
        itertools.islice(
            market(hedge_ratio=hedge_ratio, mean_reversion=mean_reversion).trades(START), 40_000
        )
    )
    closes = second_closes(trades)
    # The spread is autocorrelated, so the standard error is Newey-West's (HAC), not OLS's.
    fit = sm.OLS(closes["BTCUSDT"], sm.add_constant(closes["ETHUSDT"])).fit(
        cov_type="HAC", cov_kwds={"maxlags": 120}
    )
    assert abs(fit.params["ETHUSDT"] - hedge_ratio) < 4 * fit.bse["ETHUSDT"]
    assert fit.params["ETHUSDT"] == pytest.approx(hedge_ratio, rel=0.05)
    spread = closes["BTCUSDT"] - hedge_ratio * closes["ETHUSDT"]
    assert abs(spread.mean()) < 0.2
    assert adfuller(spread, autolag="AIC", result_object=True).pvalue < 0.01
    # Each leg alone is a random walk: not stationary.
    assert adfuller(closes["ETHUSDT"], autolag="AIC", result_object=True).pvalue > 0.05
    # The spread's autocorrelation decays as exp(-speed * lag). The ratio of two lags cancels
    # the white noise that trades of the two legs at slightly different times add.
    decay_10s = spread.autocorr(20) / spread.autocorr(10)
    half_life = -10 * math.log(2) / math.log(decay_10s)
    # A loose check: some 2,000 s of a 14 to 35 s half-life leave the estimate noisy.
    assert half_life == pytest.approx(math.log(2) / mean_reversion, rel=0.5)


GROUPS = (("AUSDT", "BUSDT", "CUSDT"), ("DUSDT", "EUSDT"), ("FUSDT",))


def test_pairs_inside_a_group_are_cointegrated_and_pairs_across_groups_are_not() -> None:
    symbols = tuple(symbol for group in GROUPS for symbol in group)
    grouped = market(symbols=symbols, groups=GROUPS, tick_rate=60.0, mean_reversion=0.05)
    assert grouped.drivers == ("BUSDT", "EUSDT", "FUSDT")
    closes = second_closes(list(itertools.islice(grouped.trades(START), 150_000)))
    group_of = {symbol: g for g, group in enumerate(GROUPS) for symbol in group}
    inside, across = [], []
    for a, b in itertools.combinations(symbols, 2):
        pvalue = coint(closes[a], closes[b], trend="c")[1]
        (inside if group_of[a] == group_of[b] else across).append((pvalue, a, b))
    assert len(inside) == 4 and len(across) == 11
    assert max(inside)[0] < 0.01, max(inside)
    assert min(across)[0] > 0.05, min(across)
    # The driver walks are independent: returns across groups are uncorrelated.
    returns = closes.apply(lambda c: c.pct_change()).dropna()
    assert abs(returns["AUSDT"].corr(returns["DUSDT"])) < 0.1
    assert returns["AUSDT"].corr(returns["BUSDT"]) > 0.3
    fit = sm.OLS(closes["DUSDT"], sm.add_constant(closes["EUSDT"])).fit()
    assert fit.params["EUSDT"] == pytest.approx(1.5, rel=0.05)


def test_without_groups_the_market_is_one_group_driven_by_the_second_symbol() -> None:
    plain = Market.from_settings(load_settings(symbols="BTCUSDT,ETHUSDT,SOLUSDT"))
    assert plain.groups == (("BTCUSDT", "ETHUSDT", "SOLUSDT"),)
    assert plain.drivers == ("ETHUSDT",)
    grouped = Market.from_settings(
        load_settings(symbols="BTCUSDT,ETHUSDT,SOLUSDT", synthetic_groups="solusdt|btcusdt,ethusdt")
    )
    assert grouped.drivers == ("SOLUSDT", "ETHUSDT")
    assert grouped.describe() == "SOLUSDT on SOLUSDT | BTCUSDT,ETHUSDT on ETHUSDT"
