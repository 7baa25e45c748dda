"""What the worker publishes about the whole universe, driven through the engine as the worker
drives it, on a synthetic market with two groups: the correlation matrix (on every closed bar,
numpy's correlations of the log returns of the bars it published) and the screener's rows (each
pair's latest statistics with the stationarity values its stream last carried)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from services.ingestor.synthetic import Market
from shared import keys
from shared.correlation import CorrelationMatrix
from shared.schemas import SchemaError, Tick
from shared.screener import ScreenRow
from shared.views import PairView
from tests.analytics_support import EngineRun, engine_settings

GROUPS = (("BTCUSDT", "ETHUSDT", "SOLUSDT"), ("BNBUSDT", "XRPUSDT"))
SYMBOLS = tuple(symbol for group in GROUPS for symbol in group)
START = 1_765_892_498_000


def synthetic_ticks(count: int) -> list[Tick]:
    market = Market(SYMBOLS, GROUPS, seed=11, hedge_ratio=1.5, mean_reversion=0.05, noise=0.05,
                    tick_rate=50.0)  # fmt: skip
    return [
        Tick(t.ts, t.symbol, t.price, t.size, t.trade_id, t.side, t.ts)
        for t in itertools.islice(market.trades(START), count)
    ]


def published(run: EngineRun, tf: str) -> list[CorrelationMatrix]:
    return [
        CorrelationMatrix.from_fields(out.fields)
        for step in run.steps
        for out in step.fields
        if out.key == keys.correlation(tf)
    ]


def test_each_closed_bar_publishes_numpys_correlation_of_the_bars_published() -> None:
    settings = engine_settings(symbols=",".join(SYMBOLS), timeframes="1s,1m", window=40)
    run = EngineRun.start(settings)
    run.feed(synthetic_ticks(6_000), chunk=25)
    matrices = published(run, "1s")
    assert len(matrices) > 90  # about one a bar: bars closed together publish the newest once
    closes = pd.DataFrame({s: run.bars("1s", s).set_index("start")["close"] for s in SYMBOLS})
    for matrix in matrices[-5:]:
        window = closes.loc[: matrix.ts].tail(matrix.n)
        assert matrix.n == 41 and window.index[-1] == matrix.ts
        logs = np.log(window[list(matrix.symbols)].to_numpy().T)
        expected = np.corrcoef(logs[:, 1:] - logs[:, :-1])
        np.testing.assert_allclose(matrix.values, expected, atol=1e-12)
    last = matrices[-1]
    groups = [next(g for g, group in enumerate(GROUPS) if s in group) for s in last.symbols]
    assert groups in ([0, 0, 0, 1, 1], [1, 1, 0, 0, 0])
    assert not published(run, "1m")  # no minute has 3 closes yet in 2 minutes of trades


def test_a_universe_of_one_symbol_publishes_no_matrix() -> None:
    run = EngineRun.start(engine_settings(symbols="BTCUSDT", timeframes="1s"))
    run.feed([t for t in synthetic_ticks(3_000) if t.symbol == "BTCUSDT"], chunk=200)
    assert not published(run, "1s")


def screener_rows(run: EngineRun, key: str) -> dict[str, ScreenRow]:
    """What the hash `key` holds: each field as last set."""
    held: dict[str, str] = {}
    for step in run.steps:
        for out in step.fields:
            if out.key == key:
                held.update(out.fields)
    return {pair: ScreenRow.from_json(text) for pair, text in held.items()}


def test_the_screener_holds_every_pair_with_its_latest_and_carried_stationarity() -> None:
    settings = engine_settings(symbols=",".join(SYMBOLS), timeframes="1s", window=30,
                               adf_every=7)  # fmt: skip
    run = EngineRun.start(settings)
    run.feed(synthetic_ticks(5_000), chunk=25)
    rows = screener_rows(run, keys.screener("1s"))
    assert sorted(rows) == sorted(f"{a}-{b}" for a, b in settings.pair_legs)
    for (a, b), row in zip(settings.pair_legs, (rows[f"{a}-{b}"] for a, b in settings.pair_legs),
                           strict=True):  # fmt: skip
        view = PairView(a, b, "1s", 30)
        latest = run.latest(view.latest_key(30))
        assert (row.a, row.b, row.ts, row.n, row.window, row.method) == (
            a, b, latest.ts, latest.n, 30, "ols")  # fmt: skip
        assert (row.zscore, row.beta, row.alpha, row.corr, row.spread_std) == (
            latest.zscore, latest.beta, latest.alpha, latest.corr, latest.spread_std)  # fmt: skip
        carrying = [s for s in run.stats(view.stream_key(30)) if s.adf_pvalue is not None]
        assert carrying, "the tests ran on some bars"
        assert row.adf_ts == carrying[-1].ts
        assert (row.adf_pvalue, row.coint_pvalue, row.half_life) == (
            carrying[-1].adf_pvalue, carrying[-1].coint_pvalue, carrying[-1].half_life)  # fmt: skip


def test_a_screener_row_goes_through_json_and_a_bad_one_is_refused() -> None:
    row = ScreenRow("BTCUSDT", "ETHUSDT", 5, 30, 30, "ols", math.nan, 1.5, 0.1, 0.9, 2.0,
                    adf_pvalue=0.01, adf_ts=3)  # fmt: skip
    back = ScreenRow.from_json(row.to_json())
    assert math.isnan(back.zscore) and back.adf_pvalue == 0.01 and back.coint_pvalue is None
    assert back.pair == "BTCUSDT-ETHUSDT" and back.adf_ts == 3
    text_n = row.to_json().replace('"n":30', '"n":"30"')
    cases = (("{", "not JSON"), ("[1]", "not a JSON object"), ('{"a": "X"}', "lacks 'b'"),
             (text_n, "'n' of a screener row"))  # fmt: skip
    for bad, reason in cases:
        with pytest.raises(SchemaError, match=reason):
            ScreenRow.from_json(bad)
