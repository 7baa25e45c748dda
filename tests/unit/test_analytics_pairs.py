"""The per-interval pair engine equals the batch `pair_stats` for every view, 190 pairs at once."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.analytics.pairs import TimeframePairs, ViewState, complete
from shared.pairstats import adf_phase, pair_stats
from shared.views import PairView

N_SYMBOLS = 20
BARS = 90
WINDOW = 30


def symbols() -> list[str]:
    return [f"S{i:02d}USDT" for i in range(N_SYMBOLS)]


def state(pairs: TimeframePairs, view: PairView, names: list[str]) -> ViewState:
    return ViewState(
        view, names.index(view.a), names.index(view.b), view.id, view.id + ":latest",
        adf_phase(view.id, pairs.adf_every),
    )  # fmt: skip


@pytest.fixture(scope="module")
def prices() -> np.ndarray:
    """Cointegrated random walks; symbol i starts trading at bar 2 * i (NaN before)."""
    rng = np.random.default_rng(3)
    common = 100 + np.cumsum(rng.normal(0, 1, BARS))
    out = np.empty((N_SYMBOLS, BARS))
    for i in range(N_SYMBOLS):
        out[i] = (1 + i) * common + 50 * i + np.cumsum(rng.normal(0, 0.3, BARS)) + 500
        out[i, : 2 * i] = np.nan
    return out


@pytest.mark.parametrize(("adf_every", "all_pairs"), [(1_000, True), (5, False)])
def test_all_pairs_equal_the_batch_computation(
    prices: np.ndarray, adf_every: int, all_pairs: bool
) -> None:
    names = symbols()
    pairs = TimeframePairs("1s", N_SYMBOLS, capacity=WINDOW + 1, adf_every=adf_every)
    combinations = itertools.combinations(names, 2) if all_pairs else [names[6:8]]
    views = [PairView(a, b, "1s", WINDOW) for a, b in combinations]
    views += [
        PairView(names[3], names[1], "1s", 12, "kalman"),
        PairView(names[0], names[5], "1s", 15, "huber"),
        PairView(names[2], names[4], "1s", 45, "ols"),
    ]
    for view in views:
        pairs.add(state(pairs, view, names))
    assert pairs.matrix.capacity == 46
    assert all_pairs == (len(views) == 193)
    got: dict[str, list] = {view.id: [] for view in views}
    for bar in range(BARS):
        column = [None if np.isnan(p) else float(p) for p in prices[:, bar]]
        for entry in pairs.on_interval(bar * 1000, column):
            got[entry.view.id].append(complete(entry) if entry.slow else entry.stat)
    assert len(got[views[0].id]) == BARS - 2 - 2 * names.index(views[0].b)
    checked_adf = 0
    for view in views:
        a, b = prices[names.index(view.a)], prices[names.index(view.b)]
        both = ~np.isnan(a) & ~np.isnan(b)
        ts = np.arange(BARS)[both] * 1000
        phase = adf_phase(view.id, adf_every)
        due = [(t // 1000 + phase) % adf_every == 0 for t in ts]
        expected = pair_stats(
            ts, a[both], b[both], window=view.window, method=view.method, adf_rows=due
        )
        stats = got[view.id]
        assert [s.ts for s in stats] == [s.ts for s in expected], view.id
        for live, batch in zip(stats, expected, strict=True):
            assert (live.n, live.price_a, live.price_b) == (batch.n, batch.price_a, batch.price_b)
            for name in ("alpha", "beta", "zscore", "corr", "spread", "spread_std"):
                assert getattr(live, name) == pytest.approx(
                    getattr(batch, name), rel=1e-9, abs=1e-9
                ), (view.id, live.ts, name)
            for name in ("adf_stat", "adf_pvalue", "half_life", "coint_pvalue"):
                expected_value = getattr(batch, name)
                if expected_value is None:
                    assert getattr(live, name) is None, (view.id, live.ts, name)
                else:
                    assert getattr(live, name) == pytest.approx(expected_value, rel=1e-9)
        checked_adf += sum(1 for s in stats if s.adf_pvalue is not None)
    assert checked_adf > (0 if all_pairs else 10)


def test_views_already_published_or_filling_are_skipped(prices: np.ndarray) -> None:
    names = symbols()
    pairs = TimeframePairs("1s", N_SYMBOLS, capacity=WINDOW + 1, adf_every=10)
    done = state(pairs, PairView(names[0], names[1], "1s", WINDOW), names)
    filling = state(pairs, PairView(names[0], names[2], "1s", WINDOW), names)
    done.published_until, filling.ready = 40_000, False
    pairs.add(done)
    pairs.add(filling)
    produced = []
    for bar in range(50):
        column = [None if np.isnan(p) else float(p) for p in prices[:, bar]]
        produced += [(e.view.id, e.start) for e in pairs.on_interval(bar * 1000, column)]
    assert produced == [(done.id, start) for start in range(41_000, 50_000, 1000)]
