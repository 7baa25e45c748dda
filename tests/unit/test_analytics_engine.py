"""The analytics engine, driven as the worker drives it: on the recorded Binance trades its bars
equal pandas resampling of the same ticks and every statistic equals a batch computation with
statsmodels/numpy on the same bars."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint

from services.analytics.outputs import Wanted
from shared import keys
from shared.config import timeframe_ms
from shared.history import History
from shared.pairstats import pair_stats
from shared.schemas import PairStat, Tick
from shared.views import PairView
from testkit.recorded import recorded_ticks
from tests.analytics_support import (
    PAIR,
    SYMBOLS,
    EngineRun,
    aligned_closes,
    engine_settings,
    expected_bars,
    expected_firings,
    first_bar,
    recorded_between,
    rule,
    store,
)

WINDOW = 60
WINDOW_ADF = 20
WINDOW_RULES = 20
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


def test_bars_and_statistics_equal_pandas_and_statsmodels() -> None:
    ticks = [*recorded_ticks(), *closing_ticks()]
    view = PairView(*SYMBOLS, "1s", WINDOW)
    run = EngineRun.start(engine_settings(window=WINDOW, adf_every=7))
    run.feed(ticks)
    run.idle(1_000)
    latest = run.latest(view.latest_key(WINDOW))
    assert latest.ts >= last_start("1s"), "the engine did not reach the last bar"
    assert len(run.bars("5m", SYMBOLS[1])) > 0
    for tf in ("1s", "1m", "5m"):
        for symbol in SYMBOLS:
            got = run.bars(tf, symbol)
            got = got[got["start"] <= last_start(tf)].reset_index(drop=True)
            expected = expected_bars(ticks, symbol, tf, last_start(tf))
            assert len(got) == len(expected) > 0, (tf, symbol)
            for column in ("start", "trades", "open", "high", "low", "close"):
                np.testing.assert_array_equal(got[column], expected[column], err_msg=column)
            for column in ("volume", "vwap"):
                np.testing.assert_allclose(got[column], expected[column], rtol=1e-12)
    stats = run.stats(view.stream_key(WINDOW))
    stats = [s for s in stats if s.ts <= last_start("1s")]
    closes = aligned_closes(ticks, "1s", last_start("1s"))
    assert [s.ts for s in stats] == closes["start"].tolist()[2:]
    assert check_against_statsmodels(stats, closes, WINDOW) >= (len(stats) - 20) // 7
    batch = pair_stats(closes["start"], closes[SYMBOLS[0]], closes[SYMBOLS[1]], window=WINDOW)
    for live, offline in zip(stats, batch, strict=True):
        assert live.ts == offline.ts
        for name in ("alpha", "beta", "zscore", "corr", "spread_mean", "spread_std"):
            assert getattr(live, name) == pytest.approx(getattr(offline, name), rel=1e-9, abs=1e-12)
    minute = run.stats(keys.analytics(*SYMBOLS, "1m"))
    minute_closes = aligned_closes(ticks, "1m", last_start("1m"))
    minute = [s for s in minute if s.ts <= last_start("1m")]
    assert len(minute) == len(minute_closes) - 2 > 0
    check_against_statsmodels(minute, minute_closes, WINDOW)


def test_adf_on_request_lands_in_latest_and_the_next_entry() -> None:
    ticks, first = recorded_ticks(), first_bar()
    view = PairView(*SYMBOLS, "1s", WINDOW_ADF)
    run = EngineRun.start(engine_settings(window=WINDOW_ADF, adf_every=100_000))
    run.feed(recorded_between(0, 60))
    run.idle(1_000)
    assert run.latest(view.latest_key(WINDOW_ADF)).ts >= first + 58_000
    assert run.latest(view.latest_key(WINDOW_ADF)).adf_pvalue is None
    requests = [
        (keys.ANALYTICS_REQUESTS, [("1-0", ["kind", "adf", "view", view.id, "ts", "0"]),
                                   ("2-0", ["kind", "adf", "view", "nope", "ts", "0"])]),
    ]  # fmt: skip
    step = run.engine.ingest(requests, run.wall, 1_000).step
    run.steps.append(step)
    [fields] = step.fields
    assert fields.key == view.latest_key(WINDOW_ADF) and fields.fields.get("adf_pvalue")
    requested_at = run.latest(view.latest_key(WINDOW_ADF)).ts
    run.feed(recorded_between(60, 70))
    run.idle(1_000)
    assert run.latest(view.latest_key(WINDOW_ADF)).ts > requested_at + 2000
    stats = run.stats(view.stream_key(WINDOW_ADF))
    with_adf = [s for s in stats if s.adf_pvalue is not None]
    assert [s.ts for s in with_adf] == [requested_at + 1000]
    closes = aligned_closes(ticks, "1s", requested_at + 1000)
    batch = pair_stats(
        closes["start"], closes[SYMBOLS[0]], closes[SYMBOLS[1]], window=WINDOW_ADF,
        adf_rows=np.ones(len(closes), dtype=bool),
    )[-1]  # fmt: skip
    assert with_adf[0].adf_pvalue == pytest.approx(batch.adf_pvalue, rel=1e-9)
    assert with_adf[0].coint_pvalue == pytest.approx(batch.coint_pvalue, rel=1e-9)
    assert any("view 'nope' is not served" in p.text for p in run.problems())


def test_rules_fire_once_per_crossing_with_cooldown_and_survive_bad_rules() -> None:
    ticks = recorded_ticks()
    newest = max(t.ts for t in ticks)
    last_bar = newest - newest % 1000 - 1000
    kalman = PairView(*SYMBOLS, "1s", 30, "kalman")
    stored = {
        "z-every": rule("z every crossing"),
        "z-cooldown": rule("z at most every 30 s", cooldown_s=30),
        "z-corr": rule(
            "z up with correlated legs", op=">", threshold=1.0,
            conditions=[{"metric": "corr", "op": ">", "threshold": 0.3}],
        ),
        "kalman-z": rule("kalman z", window=30, method="kalman"),
        "off": rule("disabled", enabled=False, threshold=0.0),
        "broken": "{not json",
        "bad-op": rule("bad op", op="=="),
        "other-pair": rule("unserved", pair="BTCUSDT-SOLUSDT"),
    }  # fmt: skip
    wanted = Wanted(stored, len(stored), [])
    run = EngineRun.start(engine_settings(window=WINDOW_RULES), wanted)
    for lo in range(0, len(ticks), 30_000):
        run.feed(ticks[lo : lo + 30_000], chunk=3_000)
        run.steps.append(run.engine.set_wanted(wanted))
    run.idle(1_200)
    assert run.latest(kalman.latest_key(WINDOW_RULES)).ts >= last_bar
    assert run.engine.health(0)["rules_active"] == 4
    reported = [p.text for p in run.problems() if p.kind == "bad-rule"]
    assert len(reported) == 3, "each bad rule is reported once"
    assert any("'broken'" in d and "not valid JSON" in d for d in reported)
    assert any("'bad-op'" in d and "op must be one of" in d for d in reported)
    assert any("'other-pair'" in d and "SOLUSDT is not in SYMBOLS" in d for d in reported)
    alerts = [alert for step in run.steps for alert in step.alerts if alert.ts <= last_bar]
    closes = aligned_closes(ticks, "1s", last_bar)
    a, b = closes[SYMBOLS[0]], closes[SYMBOLS[1]]
    default_stats = pair_stats(closes["start"], a, b, window=WINDOW_RULES)
    kalman_stats = pair_stats(closes["start"], a, b, window=30, method="kalman")

    def fired(rule_id: str) -> list[int]:
        return [alert.ts for alert in alerts if alert.rule == rule_id]

    crossings = expected_firings(default_stats, lambda s: abs(s.zscore) > 1.5, 0)
    assert len(crossings) >= 5, "the recording crosses |z| = 1.5 several times"
    assert fired("z-every") == crossings
    cooled = expected_firings(default_stats, lambda s: abs(s.zscore) > 1.5, 30_000)
    assert fired("z-cooldown") == cooled
    assert len(cooled) < len(crossings)
    assert all(b - a >= 30_000 for a, b in itertools.pairwise(cooled))
    assert fired("z-corr") == expected_firings(
        default_stats, lambda s: s.zscore > 1.0 and s.corr > 0.3, 0
    )
    assert fired("kalman-z") == expected_firings(kalman_stats, lambda s: abs(s.zscore) > 1.5, 0)
    assert fired("off") == []
    first = next(alert for alert in alerts if alert.rule == "z-every")
    assert first.pair == PAIR and first.metric == "zscore" and abs(first.value) > 1.5
    assert "z every crossing" in first.message


def quiet_tick(symbol: str, ts: int, price: str, trade_id: int) -> Tick:
    return Tick(ts, symbol, price, "0.5", trade_id, "sell", ts + 5)


def test_a_quiet_market_closes_bars_by_wall_time_late_and_bad_ticks_are_not_merged() -> None:
    """4 s of trades, then none: wall time closes their last bar and the empty ones after it;
    a late tick is counted, not merged; bad entries are refused with their reason."""
    base = first_bar()
    live = [
        quiet_tick(symbol, base + offset, price, i + 1)
        for i, offset in enumerate(range(0, 4_000, 250))
        for symbol, price in ((SYMBOLS[0], f"{87000 + i}.5"), (SYMBOLS[1], f"{2900 + i % 5}.25"))
    ]
    run = EngineRun.start(engine_settings(window=5, bar_lateness_ms=300))
    run.feed(live)
    bad = {
        "ts": str(base + 4_100), "symbol": SYMBOLS[0], "price": "abc", "size": "1",
        "trade_id": "99", "side": "buy", "recv_ts": str(base + 4_105),
    }  # fmt: skip
    entries = [
        bad,
        {**bad, "price": "0"},
        {**bad, "price": "1", "symbol": SYMBOLS[1]},
        {"junk": "1"},
    ]
    flat = [[str(x) for pair in entry.items() for x in pair] for entry in entries]
    run.ingest([(keys.ticks(SYMBOLS[0]), [(f"9-{i}", f) for i, f in enumerate(flat)])])
    last_bar = base + 3_000
    assert not any(b >= last_bar for b in run.bars("1s", SYMBOLS[0])["start"]), "not yet"
    for _ in range(16):
        run.idle(500)
    run.feed([quiet_tick(SYMBOLS[0], base + 1_500, "1.5", 500)])
    run.idle(500)
    series = run.bars("1s", SYMBOLS[0]).set_index("start")
    assert series.index.max() >= last_bar + 2_000, "the wall clock closed the quiet bars"
    assert series.loc[base, "trades"] == 4 and series.loc[base, "open"] == 87000.5
    assert series.loc[last_bar, "trades"] == 4 and series.loc[last_bar, "close"] == 87015.5
    quiet = series.loc[last_bar + 1_000]
    assert (quiet["volume"], quiet["trades"], quiet["close"], quiet["open"]) == (
        0.0, 0, 87015.5, 87015.5,
    )  # fmt: skip
    assert 1.5 not in set(series["low"]), "the late tick was not merged"
    reasons = [entry.reason for entry in run.bad]
    assert len(reasons) == 4
    assert "field 'price' is not a plain decimal: 'abc'" in reasons[0]
    assert "field 'price' is not above zero: '0'" in reasons[1]
    assert "field 'symbol' is 'ETHUSDT' on the stream of BTCUSDT" in reasons[2]
    assert "missing field" in reasons[3]
    assert json.loads(run.bad[0].raw)["fields"]["price"] == "abc"
    assert run.count("ticks_consumed") == len(live) + 1
    assert run.count("bars_closed_1s") >= 6
    assert run.count("stats_published") > 0
    health = run.engine.health(base + 10_000)
    assert health["late_ticks"] == 1
    assert health["pairs_served"] == 1
    assert health["views_served"] == 3
    assert health["event_time"] >= base + 3_750
    assert health["lag_ms"] == 10_000 - 3_755, "from the newest receive time"


def test_a_restarted_engine_fires_as_if_it_had_run_on() -> None:
    """Rules across a restart (the streams replayed, the alerts sent restored): one that holds
    on nearly every bar fires on its first bar and never again, one with a cooldown keeps it
    across the restart, and together they fire exactly as over the whole recording."""
    ticks = recorded_ticks()
    newest = max(t.ts for t in ticks)
    last_bar = newest - newest % 1000 - 1000
    stored = {
        "always": rule("nearly always", op="abs>", threshold=0.0),
        "z-cooldown": rule("z at most every 30 s", cooldown_s=30),
    }
    wanted = Wanted(stored, len(stored), [])
    settings = engine_settings(window=WINDOW_RULES)
    before = EngineRun.start(settings, wanted)
    cut = len(ticks) // 2
    before.feed(ticks[:cut], chunk=3_000)
    assert before.alerts(), "the first engine fired"
    after = before.restarted(wanted)
    after.feed(ticks[cut:], chunk=3_000)
    after.idle(1_200)
    key = keys.analytics(*SYMBOLS, "1s")
    restart = max(stat.ts for stat in before.stats(key))
    starts = [stat.ts for stat in before.stats(key) + after.stats(key)]
    assert starts == list(range(starts[0], starts[-1] + 1_000, 1_000)), "each bar once"
    alerts = [a for a in before.alerts() + after.alerts() if a.ts <= last_bar]
    closes = aligned_closes(ticks, "1s", last_bar)
    stats = pair_stats(closes["start"], closes[SYMBOLS[0]], closes[SYMBOLS[1]], window=WINDOW_RULES)

    def fired(rule_id: str) -> list[int]:
        return [alert.ts for alert in alerts if alert.rule == rule_id]

    always = expected_firings(stats, lambda s: abs(s.zscore) > 0.0, 0)
    assert fired("always") == always
    assert all(ts <= restart for ts in always), "it did not fire again after the restart"
    cooled = expected_firings(stats, lambda s: abs(s.zscore) > 1.5, 30_000)
    assert fired("z-cooldown") == cooled
    assert any(ts > restart for ts in cooled) and any(ts <= restart for ts in cooled)


WINDOW_VIEWS = 20
FILL = 30


def assert_series(stats: list[PairStat], view: PairView, last_bar: int) -> None:
    """Consecutive bars, each equal to the batch computation on pandas bars."""
    closes = aligned_closes(recorded_ticks(), view.tf, last_bar)
    batch = {
        s.ts: s
        for s in pair_stats(
            closes["start"], closes[view.a], closes[view.b], window=view.window,
            method=view.method,
        )
    }  # fmt: skip
    assert stats, view.id
    starts = [s.ts for s in stats]
    assert starts == list(range(starts[0], starts[0] + 1000 * len(starts), 1000)), view.id
    for stat in stats:
        expected = batch[stat.ts]
        assert (stat.window, stat.method, stat.n) == (view.window, view.method, expected.n)
        for name in ("alpha", "beta", "zscore", "corr", "spread", "spread_mean", "spread_std"):
            assert getattr(stat, name) == pytest.approx(
                getattr(expected, name), rel=1e-9, abs=1e-9
            ), (view.id, stat.ts, name)


def test_views_are_served_live_filled_from_history_and_independent(tmp_path: Path) -> None:
    """Views asked for are filled from history at once (from SQLite where the worker keeps too
    few bars) and then served live; they do not disturb each other nor the default series; a
    view no longer asked for is dropped, its keys deleted."""
    ticks = recorded_ticks()
    part1, part2 = recorded_between(0, 120), recorded_between(120)
    store(tmp_path / "ticks.db", part1)
    history = History(tmp_path / "ticks.db")
    default = PairView(*SYMBOLS, "1s", WINDOW_VIEWS)
    kalman = PairView(*SYMBOLS, "1s", 100, "kalman")
    huber = PairView(*SYMBOLS, "1s", 30, "huber")
    short_lived = PairView(SYMBOLS[1], SYMBOLS[0], "1s", 25, "ols")
    asked = [kalman.id, huber.id, short_lived.id, "BTCUSDT-SOLUSDT:1s:w20:ols", "garbage"]
    run = EngineRun.start(engine_settings(window=WINDOW_VIEWS, view_fill_bars=FILL))
    run.feed(part1)
    assert list(run.want(Wanted({}, 0, asked), history).fills) == [
        kalman.id, huber.id, short_lived.id,
    ]  # fmt: skip
    for view in (kalman, huber, short_lived):
        assert run.exists(view.latest_key(WINDOW_VIEWS)), view.id
    filled = run.stats(kalman.stream_key(WINDOW_VIEWS))
    assert len(filled) == FILL
    assert filled[0].n > WINDOW_VIEWS + FILL, "the kalman view's fill reached back into SQLite"
    for start in range(0, len(part2), 3_000):
        run.feed(part2[start : start + 3_000], chunk=3_000, step_ms=50)
        if start == 3_000:
            run.want(Wanted({}, 0, asked[:2]), history)
    run.idle(1_200)
    history.close()
    newest = max(t.ts for t in ticks)
    last_bar = newest - newest % 1000 - 1000
    assert not run.exists(short_lived.stream_key(WINDOW_VIEWS))
    assert not run.exists(short_lived.latest_key(WINDOW_VIEWS))
    health = run.engine.health(0)
    assert (health["views_requested"], health["views_filling"]) == (2, 0)
    problems = [p.text for p in run.problems() if p.kind == "bad-view"]
    assert any("SOLUSDT is not in SYMBOLS" in text for text in problems)
    assert any("'garbage' is not a view id" in text for text in problems)
    for view in (default, kalman, huber):
        assert run.latest(view.latest_key(WINDOW_VIEWS)).ts >= last_bar, view.id
        stream = run.stats(view.stream_key(WINDOW_VIEWS))
        stats = [s for s in stream if s.ts <= last_bar]
        assert_series(stats, view, last_bar)
        assert stats[-1].ts == last_bar
    closes = aligned_closes(ticks, "1s", last_bar).set_index("start")
    huber_stats = run.stats(huber.stream_key(WINDOW_VIEWS))
    for stat in [s for s in huber_stats if s.ts <= last_bar][-5:]:
        window = closes.loc[: stat.ts].tail(stat.n)
        a, b = window[SYMBOLS[0]].to_numpy(), window[SYMBOLS[1]].to_numpy()
        params = sm.RLM(a, sm.add_constant(b), M=sm.robust.norms.HuberT()).fit().params
        np.testing.assert_allclose([stat.alpha, stat.beta], params, rtol=1e-9)
