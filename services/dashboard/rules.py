"""The alert-rules panel's decisions (pure): what a click asks for, what the status line then
says, what the form is filled with, and when the rules table is sent again."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from dash import html

from services.dashboard import forms, ids, panels
from services.dashboard.records import RuleRow
from services.dashboard.selection import Selection
from shared.alert_rules import DEFAULT_COOLDOWN_TEXT, AlertRule, RuleError


@dataclass(frozen=True)
class RuleCommand:
    """What a click in the rules panel asks for: save `fields` under `rule_id`, or toggle or
    delete the rule stored under it."""

    action: Literal["save", "toggle", "delete"]
    rule_id: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleDone:
    """What running a `RuleCommand` did: the rule saved, the state a toggle set, or whether a
    delete found the rule."""

    saved: AlertRule | None = None
    enabled: bool | None = None
    deleted: bool = False


def rules_digest(rows: Sequence[RuleRow]) -> str:
    body = orjson.dumps([(row.rule_id, row.raw) for row in rows])
    return f"{zlib.crc32(body):08x}"


@dataclass(frozen=True)
class RulesView:
    table: Any
    digest: str


def rules_view(rows: Sequence[RuleRow], default_window: int) -> RulesView:
    return RulesView(panels.rules_table(rows, default_window), rules_digest(rows))


def rules_refresh(
    rows: Sequence[RuleRow], shown_digest: str | None, default_window: int
) -> RulesView | None:
    """The rules table when the stored rules changed since `shown_digest`; None otherwise."""
    if rules_digest(rows) == shown_digest:
        return None
    return rules_view(rows, default_window)


def rule_command(
    trigger: Any, form: Mapping[str, Any], stored: Any, default_window: int
) -> RuleCommand:
    """What a click in the rules panel asks for: save the form, save an |z| rule for the view
    shown, or toggle or delete a rule of the table. `RuleError`/`ValueError` saying what is wrong.
    """
    if trigger == ids.RULE_SAVE:
        rule_id, fields = forms.rule_from_form({**form, "enabled": bool(form["enabled"])})
        return RuleCommand("save", rule_id, fields)
    if trigger == ids.ALERT_AT_K:
        view = Selection.from_store(stored).pair_view()
        k = Selection.from_store(stored).k
        rule_id, fields = forms.threshold_rule(
            f"{view.a}-{view.b}", view.tf, k, view.window, view.method, default_window
        )
        return RuleCommand("save", rule_id, fields)
    if trigger["type"] == ids.RULE_TOGGLE:
        return RuleCommand("toggle", trigger["rule"])
    return RuleCommand("delete", trigger["rule"])


def rule_done(command: RuleCommand, done: RuleDone) -> html.Div:
    """What the status line under the form says once `command` ran."""
    rule_id = command.rule_id
    if command.action == "save" and done.saved is not None:
        return panels.message(f"Saved rule {rule_id}: {panels.condition_text(done.saved)}", "ok")
    if command.action == "toggle":
        return panels.message(f"Rule {rule_id} {'enabled' if done.enabled else 'disabled'}")
    if done.deleted:
        return panels.message(f"Deleted rule {rule_id}")
    return panels.message(f"Rule {rule_id} was already deleted")


def rule_refused(exc: Exception) -> html.Div:
    return panels.message(f"Not saved: {exc}", "error")


def rule_not_written(exc: Exception) -> html.Div:
    return panels.message(f"Redis unreachable: {exc}", "error")


@dataclass(frozen=True)
class FormFill:
    """New values of the rule form's fields (by `ids.RULE_FORM` name; a missing name is left as
    it is) and the note under the form."""

    values: Mapping[str, Any]
    note: Any


def cleared_form() -> FormFill:
    blank = {
        "id": "",
        "name": "",
        "threshold": "",
        "cooldown_s": DEFAULT_COOLDOWN_TEXT,
        "window": "",
        "method": None,
        "conditions": "",
        "enabled": ["on"],
    }
    return FormFill(blank, "")


def edit_form(rule_id: str, raw: str | None) -> FormFill:
    """The form filled with the rule stored under `rule_id` (`raw`, None when it is gone)."""
    if raw is None:
        return FormFill({}, panels.message("That rule no longer exists", "error"))
    try:
        values, problem = forms.form_from_stored(rule_id, raw)
    except RuleError as exc:
        return FormFill({}, panels.message(str(exc), "error"))
    if problem:
        return FormFill(
            values, panels.message(f"Editing {rule_id}, which is invalid: {problem}", "error")
        )
    return FormFill(values, panels.message(f"Editing {rule_id}"))


def form_not_loaded(exc: Exception) -> FormFill:
    return FormFill({}, panels.message(f"Not loaded, Redis unreachable: {exc}", "error"))
