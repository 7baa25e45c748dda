"""The bar in progress and the provisional z-score, on the recorded Binance trades: each leg's bar
equals an independent loop over the ticks fed so far in its interval, the z-score is the spread at
the last prices against the last closed window, and publishing them changes no stored series and
fires no alert."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest

from services.analytics.forming import provisional_z
from services.analytics.outputs import FormingOut, Wanted
from shared.config import timeframe_ms
from shared.schemas import Forming, PairStat, Tick
from shared.views import PairView
from testkit.recorded import recorded_ticks
from tests.analytics_support import SYMBOLS, EngineRun, engine_settings, raw_batch, rule

WINDOW = 20
CHUNK = 700


def leg_so_far(fed: list[Tick], symbol: str, start: int, tf_ms: int) -> tuple[float, ...]:
    """(open, high, low, close, volume, trades) of the symbol's ticks fed in [start, start+tf),
    or its last price before `start`, volume 0, when it has none there."""
    inside = [t for t in fed if t.symbol == symbol and start <= t.ts < start + tf_ms]
    if not inside:
        before = [t for t in fed if t.symbol == symbol and t.ts < start]
        price = float(before[-1].price)
        return (price, price, price, price, 0.0, 0)
    prices = [float(t.price) for t in inside]
    volume = sum(float(t.size) for t in inside)
    return (prices[0], max(prices), min(prices), prices[-1], volume, len(inside))


def as_leg(record: Forming, leg: str) -> tuple[float, ...]:
    return tuple(
        getattr(record, f"{leg}_{name}")
        for name in ("open", "high", "low", "close", "volume", "trades")
    )


Given = tuple[int, list[PairStat], FormingOut]


def feed_with_forming(run: EngineRun, ticks: list[Tick]) -> list[Given]:
    """Feed in chunks, asking for the bars in progress after each: (ticks fed, statistics
    published by then on the output's view, output)."""
    outs: list[Given] = []
    for lo in range(0, len(ticks), CHUNK):
        chunk = ticks[lo : lo + CHUNK]
        run.fed += chunk
        run.ingest(raw_batch(chunk))
        step = run.engine.forming()
        run.steps.append(step)
        for out in step.forming:
            stream = out.key.removesuffix(":forming")
            outs.append((len(run.fed), run.stats(stream), out))
    return outs


def test_each_legs_bar_in_progress_and_the_provisional_z_score_match_the_ticks() -> None:
    ticks = recorded_ticks()[:24_000]
    run = EngineRun.start(engine_settings(window=WINDOW))
    outs = feed_with_forming(run, ticks)
    assert run.engine.bars.late == 0
    checked: dict[str, int] = {}
    with_z = 0
    for tf in ("1s", "1m", "5m"):
        view = PairView(*SYMBOLS, tf, WINDOW)
        key, tf_ms = view.forming_key(WINDOW), timeframe_ms(tf)
        for fed_count, published, out in (entry for entry in outs if entry[2].key == key):
            fed, record = ticks[:fed_count], out.forming
            newest = max(t.ts for t in fed)
            assert (record.start, record.ts) == (newest - newest % tf_ms, newest)
            for leg, symbol in zip(("a", "b"), SYMBOLS, strict=True):
                expected = leg_so_far(fed, symbol, record.start, tf_ms)
                assert as_leg(record, leg) == pytest.approx(expected, rel=1e-12)
            if not published:
                assert record.zscore is None
                continue
            last = published[-1]
            assert last.ts < record.start
            spread = record.a_close - last.beta * record.b_close
            assert record.beta == last.beta
            assert record.zscore == pytest.approx(
                (spread - last.spread_mean) / last.spread_std, rel=1e-9, abs=1e-12
            )
            with_z += 1
        checked[tf] = sum(1 for _, _, out in outs if out.key == key)
    assert all(count >= 5 for count in checked.values()), checked
    assert with_z >= 20


def test_nothing_is_given_again_without_a_new_trade_and_a_provisional_value_fires_nothing() -> None:
    ticks = recorded_ticks()[:20_000]
    stored = {"z": rule("z every crossing", threshold=1.0)}
    wanted = Wanted(stored, len(stored), [])
    with_forming = EngineRun.start(engine_settings(window=WINDOW), wanted)
    outs = feed_with_forming(with_forming, ticks)
    assert outs and with_forming.engine.forming().forming == []
    without = EngineRun.start(engine_settings(window=WINDOW), wanted)
    for lo in range(0, len(ticks), CHUNK):
        without.fed += ticks[lo : lo + CHUNK]
        without.ingest(raw_batch(ticks[lo : lo + CHUNK]))
    assert with_forming.alerts() == without.alerts() and without.alerts()
    for tf in ("1s", "1m"):
        key = PairView(*SYMBOLS, tf, WINDOW).stream_key(WINDOW)
        assert with_forming.stats(key) == without.stats(key)
    beyond = [o.forming for _, _, o in outs if o.forming.zscore and abs(o.forming.zscore) > 1.0]
    assert beyond, "some provisional z-scores cross the rule's threshold"


def test_a_provisional_z_score_needs_a_band() -> None:
    last = PairStat(
        ts=0, price_a=10.0, price_b=5.0, alpha=0.0, beta=2.0, spread=0.0, zscore=0.0,
        corr=0.5, spread_mean=0.5, spread_std=0.25, window=WINDOW, n=WINDOW, method="ols",
    )  # fmt: skip
    assert provisional_z(11.0, 5.0, last) == pytest.approx((11.0 - 10.0 - 0.5) / 0.25)
    assert provisional_z(11.0, 5.0, None) is None
    flat = replace(last, spread_std=0.0)
    assert provisional_z(11.0, 5.0, flat) is None
    assert provisional_z(math.inf, 5.0, last) is None


def test_bars_in_progress_go_out_at_most_once_a_period_of_wall_time_and_never_when_off() -> None:
    ticks = recorded_ticks()[:6_000]
    period = 250
    run = EngineRun.start(engine_settings(window=WINDOW, dash_forming_ms=period))
    off = EngineRun.start(engine_settings(window=WINDOW, dash_forming_ms=0))
    sent_at: list[float] = []
    for step_index, lo in enumerate(range(0, len(ticks), 300)):
        wall = 1_000.0 + 100.0 * step_index
        for engine_run in (run, off):
            engine_run.ingest(raw_batch(ticks[lo : lo + 300]))
        if run.engine.forming_due(wall).forming:
            sent_at.append(wall)
        assert off.engine.forming_due(wall).forming == ()
    assert len(sent_at) >= 5
    assert sent_at[0] == 1_000.0
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
    assert all(period <= gap <= period + 100.0 for gap in gaps), gaps
