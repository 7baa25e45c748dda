"""The universe's correlation matrix: numpy's correlations of the same log returns, in scipy's
clustering order, on a synthetic market whose groups are known, and on the recorded trades."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

from services.ingestor.synthetic import Market
from shared.correlation import CorrelationMatrix, correlation_matrix
from shared.pairstats import MIN_BARS
from shared.schemas import SchemaError
from testkit.recorded import market_trades

GROUPS = (("AUSDT", "BUSDT", "CUSDT"), ("DUSDT", "EUSDT"), ("FUSDT", "GUSDT", "HUSDT"))
SYMBOLS = tuple(symbol for group in GROUPS for symbol in group)
START = 1_765_892_498_698


def second_closes(market: Market, trades: int) -> np.ndarray:
    """Each symbol's close in each second, carried forward (rows: symbols)."""
    rows = itertools.islice(market.trades(START), trades)
    frame = pd.DataFrame([(t.ts // 1000, t.symbol, float(t.price)) for t in rows],
                         columns=["second", "symbol", "price"])  # fmt: skip
    closes = frame.pivot_table(index="second", columns="symbol", values="price", aggfunc="last")
    return closes.ffill().dropna()[list(market.symbols)].to_numpy().T


def scipy_order(correlations: np.ndarray) -> list[int]:
    distances = 1.0 - correlations
    np.fill_diagonal(distances, 0.0)
    condensed = squareform(distances, checks=False)
    return list(leaves_list(optimal_leaf_ordering(linkage(condensed, "average"), condensed)))


@pytest.fixture(scope="module")
def closes() -> np.ndarray:
    market = Market(SYMBOLS, GROUPS, seed=3, hedge_ratio=1.5, mean_reversion=0.05, noise=0.05,
                    tick_rate=80.0)  # fmt: skip
    return second_closes(market, 60_000)


def test_the_matrix_is_numpys_correlation_of_the_log_returns_in_scipys_order(
    closes: np.ndarray,
) -> None:
    window = 300
    counts = np.full(len(SYMBOLS), closes.shape[1], dtype=np.int64)
    matrix = correlation_matrix(closes, counts, SYMBOLS, ts=9, tf="1s", window=window)
    assert matrix is not None and matrix.n == window + 1
    expected = np.corrcoef(np.diff(np.log(closes[:, -(window + 1) :]), axis=1))
    order = scipy_order(expected)
    assert matrix.symbols == tuple(SYMBOLS[i] for i in order)
    np.testing.assert_allclose(matrix.values, expected[np.ix_(order, order)], rtol=0, atol=1e-12)
    # The groups come out as blocks, each group's symbols next to each other.
    blocks = [{GROUPS.index(g) for g in GROUPS if s in g}.pop() for s in matrix.symbols]
    assert sum(1 for a, b in itertools.pairwise(blocks) if a != b) == len(GROUPS) - 1
    assert matrix.value("AUSDT", "BUSDT") > 0.3 and abs(matrix.value("AUSDT", "DUSDT")) < 0.2


def test_a_symbol_short_of_the_window_has_no_row_until_it_has_caught_up(
    closes: np.ndarray,
) -> None:
    counts = np.full(len(SYMBOLS), 200, dtype=np.int64)
    counts[SYMBOLS.index("EUSDT")] = 150
    matrix = correlation_matrix(closes, counts, SYMBOLS, ts=9, tf="1s", window=500)
    assert matrix is not None and matrix.n == 200
    assert matrix.symbols[-1] == "EUSDT"
    assert np.isnan(matrix.values[-1]).all() and np.isnan(matrix.values[:, -1]).all()
    held = [i for i, s in enumerate(SYMBOLS) if s != "EUSDT"]
    expected = np.corrcoef(np.diff(np.log(closes[held, -200:]), axis=1))
    order = scipy_order(expected)
    np.testing.assert_allclose(matrix.values[:-1, :-1], expected[np.ix_(order, order)], atol=1e-12)
    few = np.full(len(SYMBOLS), MIN_BARS - 1, dtype=np.int64)
    assert correlation_matrix(closes, few, SYMBOLS, ts=9, tf="1s", window=500) is None


def test_the_recorded_pair_correlates_as_numpy_says() -> None:
    trades = pd.DataFrame(
        [(t.ts // 1000, t.symbol, float(t.price)) for t in market_trades()],
        columns=["second", "symbol", "price"],
    )
    frame = trades.pivot_table(index="second", columns="symbol", values="price", aggfunc="last")
    both = frame.ffill().dropna()[["BTCUSDT", "ETHUSDT"]].to_numpy().T
    counts = np.full(2, both.shape[1], dtype=np.int64)
    matrix = correlation_matrix(both, counts, ("BTCUSDT", "ETHUSDT"), ts=1, tf="1s", window=600)
    assert matrix is not None
    expected = np.corrcoef(np.diff(np.log(both[:, -601:]), axis=1))[0, 1]
    assert matrix.value("BTCUSDT", "ETHUSDT") == pytest.approx(expected, abs=1e-12)
    assert 0.3 < expected < 1


def test_the_matrix_goes_through_its_hash_and_a_bad_hash_is_refused(closes: np.ndarray) -> None:
    counts = np.full(len(SYMBOLS), 100, dtype=np.int64)
    counts[0] = 40
    matrix = correlation_matrix(closes, counts, SYMBOLS, ts=5_000, tf="1m", window=99)
    assert matrix is not None
    back = CorrelationMatrix.from_fields(matrix.to_fields())
    assert (back.ts, back.tf, back.window, back.n, back.symbols) == (
        5_000, "1m", 99, 100, matrix.symbols)  # fmt: skip
    np.testing.assert_array_equal(back.values, matrix.values)
    fields = matrix.to_fields()
    with pytest.raises(SchemaError, match="missing field 'values'"):
        CorrelationMatrix.from_fields({k: v for k, v in fields.items() if k != "values"})
    with pytest.raises(SchemaError, match="not a matrix of 8 symbols"):
        CorrelationMatrix.from_fields({**fields, "values": "[[1.0]]"})
