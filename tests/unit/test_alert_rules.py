"""Alert-rule validation: good rules round-trip, every bad field is named in one line."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.alert_rules import RuleError, parse_rule, rule_from_dict, validate_rule_id

GOOD: dict[str, Any] = {
    "name": "z above 2",
    "pair": "btcusdt-ETHUSDT",
    "tf": "1m",
    "metric": "zscore",
    "op": "abs>",
    "threshold": 2,
    "cooldown_s": 60,
    "enabled": True,
    "conditions": [{"metric": "adf_pvalue", "op": "<", "threshold": 0.05}],
}


def test_good_rule_is_normalized_and_round_trips() -> None:
    rule = rule_from_dict(GOOD)
    assert rule.pair == "BTCUSDT-ETHUSDT"
    assert rule.symbols == ("BTCUSDT", "ETHUSDT")
    assert rule.threshold == 2.0
    assert parse_rule(rule.to_json()) == rule


def test_rule_holds_only_when_every_condition_holds() -> None:
    rule = rule_from_dict(GOOD)
    assert rule.holds({"zscore": -2.5, "adf_pvalue": 0.01})
    assert not rule.holds({"zscore": -2.5, "adf_pvalue": 0.2})
    assert not rule.holds({"zscore": 1.5, "adf_pvalue": 0.01})
    assert not rule.holds({"zscore": float("nan"), "adf_pvalue": 0.01})
    assert not rule.holds({"zscore": 3.0})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "name must be"),
        ({"pair": "BTCUSDT"}, "pair must look like"),
        ({"pair": "BTC USDT-ETHUSDT"}, "is not a symbol"),
        ({"pair": "ETHUSDT-ethusdt"}, "two different symbols"),
        ({"tf": "2x"}, "tf must be a timeframe"),
        ({"metric": "pnl"}, "metric must be one of"),
        ({"op": "=="}, "op must be one of"),
        ({"threshold": "2"}, "threshold must be a finite number"),
        ({"threshold": True}, "threshold must be a finite number"),
        ({"cooldown_s": -1}, "cooldown_s must be 0 or more"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"conditions": {}}, "conditions must be a list"),
        ({"conditions": [{"metric": "beta", "op": ">"}]}, r"conditions\[0\]\.threshold"),
        ({"conditions": [{"metric": "beta", "op": ">", "threshold": 1, "x": 1}]}, "unknown"),
        ({"window": 1}, "window must be a whole number"),
        ({"method": "lasso"}, "method must be one of"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_bad_field_is_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=message) as caught:
        rule_from_dict({**GOOD, **change})
    assert "\n" not in str(caught.value)


def test_bad_json_and_ids() -> None:
    with pytest.raises(RuleError, match="not valid JSON"):
        parse_rule("{name: 1")
    with pytest.raises(RuleError, match="must be a JSON object"):
        parse_rule("[1, 2]")
    with pytest.raises(RuleError, match="at most 4096 bytes"):
        parse_rule(orjson.dumps({**GOOD, "name": "x" * 5000}))
    assert validate_rule_id("z-score_2.v1") == "z-score_2.v1"
    with pytest.raises(RuleError, match="rule id"):
        validate_rule_id("bad id")


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_json_value_is_accepted_or_refused_with_a_rule_error(data: Any) -> None:
    try:
        rule_from_dict(data)
    except RuleError:
        pass
