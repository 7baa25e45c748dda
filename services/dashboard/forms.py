"""Turn what a user typed into the alert-rule form into a rule's JSON fields (pure, no I/O).

Validation proper is the shared one (`shared.alert_rules.rule_from_dict`); this module only
converts text to the types a rule has, and says which field could not be read.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from shared.alert_rules import DEFAULT_COOLDOWN_S, RULE_ID, RuleError, parse_rule
from shared.views import DEFAULT_METHOD

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _float(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise RuleError(f"{field} must be a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise RuleError(f"{field} must be a number, got {value!r}") from None


def rule_id_for(name: str) -> str:
    """An id from a rule's name: `z above 2` -> `z-above-2` (letters, digits, `.`, `_`, `-`)."""
    slug = _UNSAFE.sub("-", name.strip()).strip("-")[:64]
    return slug if slug and RULE_ID.match(slug) else "rule"


def rule_from_form(form: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(rule id, rule fields) from the form's values; `RuleError` naming a field it cannot read."""
    name = str(form.get("name") or "").strip()
    rule_id = str(form.get("id") or "").strip() or rule_id_for(name)
    data: dict[str, Any] = {
        "name": name,
        "pair": form.get("pair"),
        "tf": form.get("tf"),
        "metric": form.get("metric"),
        "op": form.get("op"),
        "enabled": bool(form.get("enabled", True)),
    }
    if _blank(form.get("threshold")):
        raise RuleError("threshold is required")
    data["threshold"] = _float(form.get("threshold"), "threshold")
    if not _blank(form.get("cooldown_s")):
        data["cooldown_s"] = _float(form.get("cooldown_s"), "cooldown_s")
    window = form.get("window")
    if not _blank(window):
        number = _float(window, "window")
        if not number.is_integer():
            raise RuleError(f"window must be a whole number of bars, got {window!r}")
        data["window"] = int(number)
    if not _blank(form.get("method")):
        data["method"] = form.get("method")
    conditions = form.get("conditions")
    if not _blank(conditions):
        try:
            data["conditions"] = orjson.loads(str(conditions))
        except orjson.JSONDecodeError as exc:
            raise RuleError(f"conditions: not valid JSON ({exc})") from None
    return rule_id, data


def threshold_rule(
    pair: str, tf: str, k: float, window: int, method: str, default_window: int
) -> tuple[str, dict[str, Any]]:
    """The rule the "Alert at ±k" button makes: |z| above the threshold drawn on the chart, on
    the view being shown (its window and method when they are not the defaults)."""
    data: dict[str, Any] = {
        "name": f"|z| > {k:g} on {pair} {tf}",
        "pair": pair,
        "tf": tf,
        "metric": "zscore",
        "op": "abs>",
        "threshold": k,
        "cooldown_s": 60.0,
        "enabled": True,
    }
    suffix = ""
    if window != default_window or method != DEFAULT_METHOD:
        data.update(window=window, method=method)
        suffix = f"-w{window}-{method}"
    return rule_id_for(f"z-{pair}-{tf}{suffix}-{k:g}"), data


def form_from_rule(rule_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The form's values for a stored rule (for Edit)."""
    conditions = data.get("conditions") or []
    return {
        "id": rule_id,
        "name": data.get("name", ""),
        "pair": data.get("pair"),
        "tf": data.get("tf"),
        "metric": data.get("metric"),
        "op": data.get("op"),
        "threshold": data.get("threshold"),
        "cooldown_s": data.get("cooldown_s", DEFAULT_COOLDOWN_S),
        "window": data.get("window"),
        "method": data.get("method"),
        "conditions": orjson.dumps(conditions).decode() if conditions else "",
        "enabled": bool(data.get("enabled", True)),
    }


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else type(value).__name__


def form_from_stored(rule_id: str, raw: str) -> tuple[dict[str, Any], str]:
    """The form's inputs for the rule stored under `rule_id` (numbers as text, `enabled` as the
    checklist value), and what is wrong with it ("" for a valid rule): an invalid rule is loaded
    as far as it goes so it can be corrected. `RuleError` when it is not a JSON object at all."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RuleError(
            f"rule {rule_id} is not valid JSON ({exc}); delete it, or save a rule with its id"
        ) from None
    if not isinstance(data, dict):
        raise RuleError(
            f"rule {rule_id} is a JSON {_json_kind(data)}, not an object; delete it, or save a "
            "rule with its id"
        )
    values = form_from_rule(rule_id, data)
    for name in ("name", "threshold", "cooldown_s", "window"):
        values[name] = _field_text(values[name])
    for name in ("pair", "tf", "metric", "op", "method"):
        if not isinstance(values[name], str):
            values[name] = None
    values["enabled"] = ["on"] if values["enabled"] else []
    try:
        parse_rule(raw)
    except RuleError as exc:
        return values, str(exc)
    return values, ""
