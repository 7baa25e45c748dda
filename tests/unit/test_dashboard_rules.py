"""The alert-rules panel's decisions, without Dash: clicks to commands, what the status line
says, the form filled from a stored rule or cleared, and when the table is sent again."""

from __future__ import annotations

from typing import Any

import pytest
from dash import html

from services.dashboard import ids, rules
from services.dashboard.records import RuleRow
from services.dashboard.rules import RuleCommand, RuleDone
from shared.alert_rules import RuleError, parse_rule

LIVE = {"mode": "live", "a": "BTCUSDT", "b": "ETHUSDT", "tf": "1s", "window": 60,
        "method": "ols", "k": 2.0, "theme": "dark"}  # fmt: skip


def text(component: Any) -> str:
    return str(component.children) if isinstance(component, html.Div) else str(component)


def rule_form(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: None for name in ids.RULE_FORM}
    values.update(name="z above 2", pair="BTCUSDT-ETHUSDT", tf="1s", metric="zscore", op="abs>",
                  threshold="2", cooldown_s="300", enabled=["on"])  # fmt: skip
    values.update(overrides)
    return values


def test_rule_clicks_become_commands() -> None:
    save = rules.rule_command(ids.RULE_SAVE, rule_form(), None, 60)
    assert (save.action, save.rule_id) == ("save", "z-above-2")
    assert save.fields["threshold"] == 2.0 and save.fields["enabled"] is True
    off = rules.rule_command(ids.RULE_SAVE, rule_form(enabled=[]), None, 60)
    assert off.fields["enabled"] is False
    with pytest.raises(RuleError, match="threshold must be a number"):
        rules.rule_command(ids.RULE_SAVE, rule_form(threshold="two"), None, 60)
    at_k = rules.rule_command(ids.ALERT_AT_K, rule_form(), {**LIVE, "k": 1.5}, 60)
    assert at_k.action == "save" and at_k.fields["threshold"] == 1.5
    assert at_k.fields["pair"] == "BTCUSDT-ETHUSDT" and "window" not in at_k.fields
    with pytest.raises(ValueError, match="no view chosen yet"):
        rules.rule_command(ids.ALERT_AT_K, rule_form(), None, 60)
    toggle = rules.rule_command({"type": ids.RULE_TOGGLE, "rule": "r1"}, rule_form(), None, 60)
    delete = rules.rule_command({"type": ids.RULE_DELETE, "rule": "r1"}, rule_form(), None, 60)
    assert toggle == RuleCommand("toggle", "r1") and delete == RuleCommand("delete", "r1")


def test_what_a_rule_command_did_is_said_under_the_form() -> None:
    rule = parse_rule('{"name": "z", "pair": "BTCUSDT-ETHUSDT", "tf": "1s", "metric": "zscore",'
                      ' "op": "abs>", "threshold": 2}')  # fmt: skip
    saved = rules.rule_done(RuleCommand("save", "z"), RuleDone(saved=rule))
    assert text(saved) == "Saved rule z: zscore abs> 2" and saved.className == "message ok"
    off = rules.rule_done(RuleCommand("toggle", "z"), RuleDone(enabled=False))
    assert text(off) == "Rule z disabled"
    gone = rules.rule_done(RuleCommand("delete", "z"), RuleDone(deleted=True))
    assert text(gone) == "Deleted rule z"
    again = rules.rule_done(RuleCommand("delete", "z"), RuleDone(deleted=False))
    assert text(again) == "Rule z was already deleted"
    assert text(rules.rule_refused(RuleError("bad"))) == "Not saved: bad"


def test_the_rules_table_is_sent_only_when_the_rules_changed() -> None:
    rows = [RuleRow("r1", '{"x": 1}', None, "not a rule")]
    shown = rules.rules_refresh(rows, None, 60)
    assert shown is not None and shown.digest == rules.rules_digest(rows)
    assert rules.rules_refresh(rows, shown.digest, 60) is None
    assert rules.rules_digest([]) != shown.digest


def test_the_rule_form_is_filled_from_a_stored_rule_or_cleared() -> None:
    stored = '{"name": "half a rule", "tf": "1m", "threshold": "abc"}'
    half = rules.edit_form("half", stored)
    assert half.values["name"] == "half a rule" and half.values["threshold"] == "abc"
    assert text(half.note).startswith("Editing half, which is invalid")
    assert set(half.values) == set(ids.RULE_FORM)
    assert text(rules.edit_form("gone", None).note) == "That rule no longer exists"
    broken = rules.edit_form("a-list", "[1]")
    assert broken.values == {} and "is a JSON array, not an object" in text(broken.note)
    cleared = rules.cleared_form()
    assert cleared.note == "" and cleared.values["enabled"] == ["on"]
    assert set(cleared.values) < set(ids.RULE_FORM) and "pair" not in cleared.values
