"""The alert-rule form: typed values to rule fields, validated by the shared rule validation."""

from __future__ import annotations

from typing import Any

import pytest

from services.dashboard.forms import (
    form_from_rule,
    form_from_stored,
    rule_from_form,
    rule_id_for,
    threshold_rule,
)
from shared.alert_rules import RuleError, rule_from_dict, validate_rule_id


def form(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": "", "name": "z above 2", "pair": "BTCUSDT-ETHUSDT", "tf": "1m", "metric": "zscore",
        "op": "abs>", "threshold": "2", "cooldown_s": "300", "window": "", "method": None,
        "conditions": "", "enabled": True,
    }  # fmt: skip
    values.update(overrides)
    return values


def test_typed_values_become_a_valid_rule() -> None:
    rule_id, data = rule_from_form(form(window="120", method="kalman", cooldown_s="30"))
    assert rule_id == "z-above-2"
    rule = rule_from_dict(data)
    assert (rule.threshold, rule.cooldown_s, rule.window, rule.method) == (2.0, 30.0, 120, "kalman")


def test_extra_conditions_are_json() -> None:
    conditions = '[{"metric": "adf_pvalue", "op": "<", "threshold": 0.05}]'
    _, data = rule_from_form(form(conditions=conditions))
    assert rule_from_dict(data).conditions[0].metric == "adf_pvalue"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"threshold": ""}, "threshold is required"),
        ({"threshold": "two"}, "threshold must be a number"),
        ({"cooldown_s": "soon"}, "cooldown_s must be a number"),
        ({"window": "1.5"}, "window must be a whole number"),
        ({"conditions": "[{"}, "conditions: not valid JSON"),
    ],
)
def test_unreadable_fields_are_named(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(RuleError, match=reason):
        rule_from_form(form(**change))


def test_shared_validation_reports_what_the_form_cannot_know() -> None:
    _, data = rule_from_form(form(metric="price", conditions='[{"metric": "beta"}]'))
    with pytest.raises(RuleError, match="metric must be one of"):
        rule_from_dict(data)


def test_ids_from_names_are_valid_rule_ids() -> None:
    for name in ("z above 2", "|z| > 2.5 on BTC/ETH", "", "   ", "' OR 1=1; --"):
        validate_rule_id(rule_id_for(name))
    assert rule_id_for("") == "rule"


def test_alert_at_threshold_makes_a_rule_for_the_view_shown() -> None:
    rule_id, data = threshold_rule("BTCUSDT-ETHUSDT", "1s", 2.5, 60, "ols", 60)
    rule = rule_from_dict(data)
    assert rule_id == "z-BTCUSDT-ETHUSDT-1s-2.5"
    assert (rule.metric, rule.op, rule.threshold, rule.window, rule.method) == (
        "zscore", "abs>", 2.5, None, None
    )  # fmt: skip
    rule_id, data = threshold_rule("BTCUSDT-ETHUSDT", "1m", 3, 120, "kalman", 60)
    rule = rule_from_dict(data)
    assert rule_id == "z-BTCUSDT-ETHUSDT-1m-w120-kalman-3"
    assert (rule.window, rule.method) == (120, "kalman")


def test_edit_fills_the_form_with_the_stored_rule() -> None:
    rule_id, data = rule_from_form(
        form(conditions='[{"metric": "corr", "op": ">", "threshold": 0.5}]')
    )
    values = form_from_rule(rule_id, rule_from_dict(data).__class__ and data)
    again_id, again = rule_from_form(values)
    assert again_id == rule_id
    assert rule_from_dict(again) == rule_from_dict(data)


def test_edit_of_a_valid_stored_rule_gives_the_form_inputs() -> None:
    rule_id, data = rule_from_form(form(window="120", method="kalman", cooldown_s="30"))
    values, problem = form_from_stored(rule_id, rule_from_dict(data).to_json())
    assert problem == ""
    assert (values["threshold"], values["cooldown_s"], values["window"]) == ("2", "30", "120")
    assert values["enabled"] == ["on"] and values["method"] == "kalman"
    again_id, again = rule_from_form({**values, "enabled": bool(values["enabled"])})
    assert (again_id, rule_from_dict(again)) == (rule_id, rule_from_dict(data))


def test_edit_of_an_invalid_stored_rule_loads_what_it_can_and_says_why() -> None:
    raw = '{"name": ["z"], "pair": 5, "tf": "1m", "threshold": "abc", "window": 2.5}'
    values, problem = form_from_stored("odd", raw)
    assert (values["id"], values["name"], values["pair"], values["tf"]) == (
        "odd",
        "['z']",
        None,
        "1m",
    )
    assert (values["threshold"], values["window"], values["enabled"]) == ("abc", "2.5", ["on"])
    assert problem.startswith("name must be")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "rule odd is not valid JSON"),
        ("[1, 2]", "rule odd is a JSON array, not an object"),
        ('"text"', "rule odd is a JSON string, not an object"),
        ("null", "rule odd is a JSON null, not an object"),
        ("7", "rule odd is a JSON number, not an object"),
    ],
)
def test_edit_of_a_stored_rule_that_is_no_json_object_says_so(raw: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        form_from_stored("odd", raw)
