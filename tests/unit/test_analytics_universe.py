"""What the worker publishes about the whole universe, driven through the engine as the worker
drives it, on a synthetic market with two groups: the correlation matrix (on every closed bar,
numpy's correlations of the log returns of the bars it published) and the screener's rows (each
pair's latest statistics with the stationarity values its stream last carried)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import orjson
import pandas as pd
import pytest

from services.ingestor.synthetic import Market
from shared import keys
from shared.correlation import CorrelationMatrix
from shared.pairstats import Stationarity
from shared.schemas import PairStat, SchemaError, Tick
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
        assert (row.a, row.b) == (a, b)
        assert repr(row.stat) == repr(run.latest(view.latest_key(30)))
        carrying = [s for s in run.stats(view.stream_key(30)) if s.adf_pvalue is not None]
        assert carrying, "the tests ran on some bars"
        assert row.adf_ts == carrying[-1].ts
        assert row.carried == Stationarity.of(carrying[-1])


def test_a_screener_row_goes_through_json_and_a_bad_one_is_refused() -> None:
    stat = PairStat(5, 100.0, 50.0, 0.1, 1.5, 25.0, math.nan, 0.9, 24.0, 2.0, 30, 30, "ols")
    row = ScreenRow("BTCUSDT", "ETHUSDT", stat, Stationarity(adf_pvalue=0.01), 3)
    back = ScreenRow.from_json(row.to_json())
    assert repr(back) == repr(row) and back.pair == "BTCUSDT-ETHUSDT"
    good = orjson.loads(row.to_json())
    cases = {
        "{": "not JSON",
        "[1]": "not a JSON object",
        '{"a": "X"}': "names no pair",
        orjson.dumps({**good, "adf_ts": "soon"}): "adf_ts of a screener row",
        orjson.dumps({**good, "stat": {"ts": "1"}}): "missing field",
        orjson.dumps({**good, "carried": {"adf_pvalue": 1}}): "not a map of text fields",
        orjson.dumps({**good, "carried": {"p": "1"}}): "unknown fields",
    }
    for bad, reason in cases.items():
        with pytest.raises(SchemaError, match=reason):
            ScreenRow.from_json(bad)
