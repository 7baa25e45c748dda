"""The worker's correlation matrix of the universe, driven through the engine as the worker
drives it: on every closed bar, equal to numpy's correlations of the log returns of the bars it
published, on a synthetic market with two groups."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from services.ingestor.synthetic import Market
from shared import keys
from shared.correlation import CorrelationMatrix
from shared.schemas import Tick
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
