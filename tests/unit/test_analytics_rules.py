"""The rule engine, the view registry, the tick parser and the analytics settings: pure code."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from services.analytics.alerts import RuleBook
from services.analytics.redis_wire import raw_streams
from services.analytics.ticks import BadTick, parse_entry
from services.analytics.views import ViewRegistry
from shared.config import ConfigError, load_settings
from shared.pairstats import Stationarity
from shared.schemas import PairStat, Tick
from shared.views import PairView, default_views

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def stat(ts: int, zscore: float, **fields: Any) -> PairStat:
    base = PairStat(
        ts=ts, price_a=1.0, price_b=1.0, alpha=0.0, beta=1.0, spread=0.0, zscore=zscore,
        corr=0.5, window=60, n=60, method="ols", spread_mean=0.0, spread_std=1.0,
    )  # fmt: skip
    return replace(base, **fields)


def rule(**fields: Any) -> str:
    body = {"name": "z", "pair": "BTCUSDT-ETHUSDT", "tf": "1m", "metric": "zscore",
            "op": "abs>", "threshold": 2.0, "cooldown_s": 120, **fields}  # fmt: skip
    return json.dumps(body)


def book() -> RuleBook:
    return RuleBook(SYMBOLS, ("1s", "1m"), 60)


VIEW = "BTCUSDT-ETHUSDT:1m:w60:ols"


def test_fires_once_per_crossing_and_at_most_once_per_cooldown() -> None:
    rules = book()
    assert rules.load({"r": rule(cooldown_s=300)}) == []
    z = [0, 2.5, 2.6, 3, 1, 2.2, 0, -2.5, 0, 0, 2.1, 2.1, 0]
    stats = [stat(i * 60_000, value) for i, value in enumerate(z)]
    fired = rules.evaluate(VIEW, stats, None)
    # Crossings at minutes 1, 5, 7 and 10: 5 is within 300 s of 1 and 10 within 300 s of 7,
    # so they are dropped (not postponed).
    assert [a.ts // 60_000 for a in fired] == [1, 7]
    assert fired[1].value == -2.5
    assert fired[0].value == 2.5 and fired[0].threshold == 2.0 and fired[0].rule == "r"
    assert "z: zscore abs> 2 on BTCUSDT-ETHUSDT 1m" in fired[0].message


def test_new_rule_starts_from_the_last_bar_and_conditions_use_carried_stationarity() -> None:
    rules = book()
    body = rule(cooldown_s=0, conditions=[{"metric": "adf_pvalue", "op": "<", "threshold": 0.05}])
    rules.load({"r": body})
    rules.prime(VIEW, stat(0, 3.0), Stationarity(adf_pvalue=0.01))
    assert rules.evaluate(VIEW, [stat(60_000, 3.0)], Stationarity(adf_pvalue=0.01)) == []
    assert rules.evaluate(VIEW, [stat(120_000, 0.0)], Stationarity(adf_pvalue=0.01)) == []
    fired = rules.evaluate(VIEW, [stat(180_000, 2.5)], Stationarity(adf_pvalue=0.01))
    assert len(fired) == 1
    assert rules.evaluate(VIEW, [stat(240_000, 0.0)], Stationarity(adf_pvalue=0.01)) == []
    assert rules.evaluate(VIEW, [stat(300_000, 2.5)], Stationarity(adf_pvalue=0.2)) == []
    fresh = stat(360_000, 0.0, adf_pvalue=0.01), stat(420_000, 2.5)
    assert len(rules.evaluate(VIEW, list(fresh), Stationarity(adf_pvalue=0.2))) == 1


def test_bad_rules_are_reported_once_per_version_and_ignored() -> None:
    rules = book()
    stored = {
        "ok": rule(),
        "broken": "{nope",
        "bad id!": rule(),
        "solana": rule(pair="SOLUSDT-BTCUSDT"),
        "hourly": rule(tf="1h"),
        "off": rule(enabled=False),
        "kalman": rule(window=30, method="kalman"),
    }
    problems = rules.load(stored)
    assert len(problems) == 4
    assert any("'broken' ignored: not valid JSON" in p for p in problems)
    assert any("'bad id!'" in p for p in problems)
    assert any("SOLUSDT is not in SYMBOLS" in p for p in problems)
    assert any("tf 1h is not in TIMEFRAMES" in p for p in problems)
    assert sorted(rules.rules) == ["kalman", "ok"]
    assert rules.views() == {
        PairView(*SYMBOLS, "1m", 60, "ols"),
        PairView(*SYMBOLS, "1m", 30, "kalman"),
    }
    assert rules.load(stored) == []
    assert len(rules.load({**stored, "broken": "{still nope"})) == 1


def test_a_bad_rule_deleted_is_forgotten_and_reported_again_if_it_comes_back() -> None:
    rules = book()
    assert len(rules.load({"broken": "{nope"})) == 1
    assert rules.load({"broken": "{nope"}) == []
    assert rules.load({}) == []
    assert len(rules.load({"broken": "{nope"})) == 1


def test_view_registry_validates_and_caps() -> None:
    defaults = default_views([SYMBOLS], ("1s", "1m"), 60)
    assert [v.id for v in defaults] == [f"{'-'.join(SYMBOLS)}:{tf}:w60:ols" for tf in ("1s", "1m")]
    registry = ViewRegistry(SYMBOLS, ("1s", "1m"), defaults, max_views=2)
    members = [
        "BTCUSDT-ETHUSDT:1s:w60:ols",
        "BTCUSDT-ETHUSDT:1s:w120:kalman",
        "ETHUSDT-BTCUSDT:1m:w30:huber",
        "BTCUSDT-ETHUSDT:5m:w30:ols",
        "BTCUSDT-XRPUSDT:1s:w30:ols",
        "BTCUSDT-ETHUSDT:1s:w2:ols",
        "BTCUSDT-ETHUSDT:1m:w90:ols",
    ]
    views, problems = registry.requested(members)
    assert [v.id for v in views] == members[1:3]
    assert len(problems) == 4
    assert any("5m is not in TIMEFRAMES" in p for p in problems)
    assert any("XRPUSDT is not in SYMBOLS" in p for p in problems)
    assert any("window 2 is outside" in p for p in problems)
    assert any("MAX_VIEWS=2" in p for p in problems)
    assert registry.requested(members)[1] == []
    assert registry.requested(members[:3])[1] == []
    assert len(registry.requested(members)[1]) == 4, "problems of members gone are forgotten"


def flat(tick: Tick) -> list[str]:
    return [str(x) for pair in tick.to_fields().items() for x in pair]


def test_ticks_parse_fast_and_name_what_is_wrong() -> None:
    good = Tick(1_700_000_000_123, "BTCUSDT", "87000.10", "0.003", 42, "buy", 1_700_000_000_130)
    expected = (1_700_000_000_123, 87000.1, 0.003, 1_700_000_000_130)
    assert parse_entry(flat(good), "BTCUSDT") == expected
    reordered = list(reversed(flat(good)))
    reordered = [x for pair in zip(reordered[1::2], reordered[::2], strict=True) for x in pair]
    assert parse_entry(reordered, "BTCUSDT")[0] == 1_700_000_000_123
    cases = {
        "1e5": "not a plain decimal",
        "nan": "not a plain decimal",
        "0.000": "not above zero",
    }
    for price, reason in cases.items():
        with pytest.raises(BadTick, match=reason):
            parse_entry(flat(replace(good, price=price)), "BTCUSDT")
    with pytest.raises(BadTick, match="field 'size' is not above zero: '0'"):
        parse_entry(flat(replace(good, size="0")), "BTCUSDT")
    with pytest.raises(BadTick, match="side"):
        parse_entry(flat(replace(good, side="hold")), "BTCUSDT")  # type: ignore[arg-type]
    with pytest.raises(BadTick, match="'symbol' is 'BTCUSDT' on the stream of ETHUSDT"):
        parse_entry(flat(good), "ETHUSDT")
    with pytest.raises(BadTick, match="'ts' is not an integer"):
        parse_entry(["ts", "soon", *flat(good)[2:]], "BTCUSDT")
    assert raw_streams(None) == []
    assert raw_streams({"a": [["1-0", ["k", "v"]]]}) == [("a", [["1-0", ["k", "v"]]])]
    assert raw_streams([["a", []]]) == [("a", [])]


def test_analytics_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SYMBOLS", "PAIRS", "TIMEFRAMES", "KALMAN_DELTA", "ADF_EVERY"):
        monkeypatch.delenv(name, raising=False)
    three = load_settings(symbols="btcusdt,ethusdt,solusdt")
    assert three.pair_legs == (
        ("BTCUSDT", "ETHUSDT"), ("BTCUSDT", "SOLUSDT"), ("ETHUSDT", "SOLUSDT"),
    )  # fmt: skip
    chosen = load_settings(symbols="btcusdt,ethusdt,solusdt", pairs="solusdt-btcusdt")
    assert chosen.pair_legs == (("SOLUSDT", "BTCUSDT"),)
    twenty = load_settings(symbols=",".join(f"S{i:02d}USDT" for i in range(20)))
    assert len(twenty.pair_legs) == 190
    monkeypatch.setenv("PAIRS", "BTCUSDT-SOLUSDT")
    with pytest.raises(ConfigError, match="PAIRS='BTCUSDT-SOLUSDT': SOLUSDT is not in SYMBOLS"):
        load_settings()
    monkeypatch.setenv("PAIRS", "BTCUSDT-BTCUSDT")
    with pytest.raises(ConfigError, match="needs two different symbols"):
        load_settings()
    monkeypatch.delenv("PAIRS")
    monkeypatch.setenv("TIMEFRAMES", "2s,5s")
    with pytest.raises(ConfigError, match="5s is not a whole number of 2s bars"):
        load_settings()
    monkeypatch.delenv("TIMEFRAMES")
    monkeypatch.setenv("KALMAN_DELTA", "1")
    with pytest.raises(ConfigError, match="KALMAN_DELTA='1'"):
        load_settings()
    monkeypatch.setenv("KALMAN_DELTA", "0.01")
    monkeypatch.setenv("ADF_EVERY", "0")
    with pytest.raises(ConfigError, match="ADF_EVERY='0'"):
        load_settings()
