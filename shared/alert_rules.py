"""Alert rules: their JSON form in `alert-rules` and the one validation every writer of rules uses.

A rule, stored as JSON under its id in the `alert-rules` hash:

    {"name": "z above 2", "pair": "BTCUSDT-ETHUSDT", "tf": "1m", "metric": "zscore",
     "op": "abs>", "threshold": 2.0, "cooldown_s": 300, "enabled": true,
     "conditions": [{"metric": "adf_pvalue", "op": "<", "threshold": 0.05}]}

It is evaluated on every closed bar of the pair's default series, or of the view given by the
optional `window` and `method`. It fires when the condition (and every extra condition) becomes
true, having been false at the previous bar, and at most once per `cooldown_s`.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import orjson

from shared.config import normalize_symbol, timeframe_ms
from shared.schemas import PAIR_STAT_METRICS, shown
from shared.views import MAX_WINDOW, METHODS, MIN_WINDOW, Method

Op = Literal[">", "<", ">=", "<=", "abs>"]
OPS: tuple[Op, ...] = (">", "<", ">=", "<=", "abs>")
METRICS = PAIR_STAT_METRICS
DEFAULT_COOLDOWN_S = 300.0
"""A rule fires at most once per this many seconds unless it says otherwise."""
DEFAULT_COOLDOWN_TEXT = f"{DEFAULT_COOLDOWN_S:g}"
"""The default as a form shows it."""
RULE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
MAX_NAME = 120
MAX_CONDITIONS = 8
MAX_RULE_BYTES = 4_096


class RuleError(ValueError):
    """A rule is malformed; the message says which field and why, in one line."""


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: Op
    threshold: float

    def holds(self, values: dict[str, float]) -> bool:
        """True when the metric is present, finite and satisfies the comparison."""
        value = values.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        return compare(value, self.op, self.threshold)


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    pair: str
    tf: str
    metric: str
    op: Op
    threshold: float
    cooldown_s: float = DEFAULT_COOLDOWN_S
    enabled: bool = True
    conditions: tuple[Condition, ...] = field(default_factory=tuple)
    window: int | None = None
    method: Method | None = None

    @property
    def symbols(self) -> tuple[str, str]:
        a, b = self.pair.split("-")
        return a, b

    @property
    def main(self) -> Condition:
        return Condition(self.metric, self.op, self.threshold)

    def holds(self, values: dict[str, float]) -> bool:
        """The rule's condition and every extra condition hold for these statistics."""
        return self.main.holds(values) and all(c.holds(values) for c in self.conditions)

    def to_json(self) -> str:
        data = asdict(self)
        data["conditions"] = [asdict(c) for c in self.conditions]
        return orjson.dumps({k: v for k, v in data.items() if v is not None}).decode()


def compare(value: float, op: Op, threshold: float) -> bool:
    if op == ">":
        return value > threshold
    if op == "<":
        return value < threshold
    if op == ">=":
        return value >= threshold
    if op == "<=":
        return value <= threshold
    return abs(value) > threshold


def _number(data: dict[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int beyond a double's range
            number = float(value)
    if not math.isfinite(number):
        raise RuleError(f"{where}{key} must be a finite number, got {shown(value)}")
    return number


def _choice(data: dict[str, Any], key: str, allowed: tuple[str, ...], where: str) -> str:
    value = data.get(key)
    if value not in allowed:
        raise RuleError(f"{where}{key} must be one of {', '.join(allowed)}; got {shown(value)}")
    return cast(str, value)


def _condition(data: Any, index: int) -> Condition:
    where = f"conditions[{index}]."
    if not isinstance(data, dict):
        raise RuleError(f"conditions[{index}] must be an object like {{metric, op, threshold}}")
    unknown = set(data) - {"metric", "op", "threshold"}
    if unknown:
        raise RuleError(f"conditions[{index}] has unknown field(s): {_names(unknown)}")
    return Condition(
        metric=_choice(data, "metric", METRICS, where),
        op=cast(Op, _choice(data, "op", OPS, where)),
        threshold=_number(data, "threshold", where),
    )


def _names(unknown: set[Any]) -> str:
    """Unknown keys as a message lists them, quoted (a key may be any text, or, in a dict built
    in Python, any value)."""
    return ", ".join(sorted(shown(key) for key in unknown))


def validate_rule_id(rule_id: str) -> str:
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        raise RuleError(f"rule id {shown(rule_id)} must be 1-64 letters, digits, '.', '_' or '-'")
    return rule_id


def rule_from_dict(data: Any) -> AlertRule:
    """Validate a decoded rule; `RuleError` naming the first bad field."""
    if not isinstance(data, dict):
        raise RuleError("a rule must be a JSON object")
    allowed = {f for f in AlertRule.__dataclass_fields__}
    unknown = set(data) - allowed
    if unknown:
        raise RuleError(f"unknown field(s): {_names(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise RuleError(f"name must be a non-empty text of at most {MAX_NAME} characters")
    pair = data.get("pair")
    if not isinstance(pair, str) or pair.count("-") != 1:
        raise RuleError(f"pair must look like BTCUSDT-ETHUSDT, got {shown(pair)}")
    try:
        a, b = (normalize_symbol(s) for s in pair.split("-"))
    except ValueError as exc:
        raise RuleError(f"pair: {exc}") from None
    if a == b:
        raise RuleError(f"pair needs two different symbols, got {shown(pair)}")
    tf = data.get("tf")
    try:
        timeframe_ms(tf if isinstance(tf, str) else "")
    except ValueError:
        raise RuleError(f"tf must be a timeframe like 1s, 1m, 5m; got {shown(tf)}") from None
    cooldown = _number(data, "cooldown_s", "") if "cooldown_s" in data else DEFAULT_COOLDOWN_S
    if cooldown < 0:
        raise RuleError(f"cooldown_s must be 0 or more, got {shown(cooldown)}")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"enabled must be true or false, got {shown(enabled)}")
    conditions = data.get("conditions", [])
    if not isinstance(conditions, list) or len(conditions) > MAX_CONDITIONS:
        raise RuleError(f"conditions must be a list of at most {MAX_CONDITIONS} conditions")
    window = data.get("window")
    if window is not None and (
        isinstance(window, bool)
        or not isinstance(window, int)
        or not MIN_WINDOW <= window <= MAX_WINDOW
    ):
        raise RuleError(
            f"window must be a whole number {MIN_WINDOW}..{MAX_WINDOW}, got {shown(window)}"
        )
    method = data.get("method")
    if method is not None and method not in METHODS:
        raise RuleError(f"method must be one of {', '.join(METHODS)}; got {shown(method)}")
    return AlertRule(
        name=name.strip(),
        pair=f"{a}-{b}",
        tf=cast(str, tf),
        metric=_choice(data, "metric", METRICS, ""),
        op=cast(Op, _choice(data, "op", OPS, "")),
        threshold=_number(data, "threshold", ""),
        cooldown_s=cooldown,
        enabled=enabled,
        conditions=tuple(_condition(c, i) for i, c in enumerate(conditions)),
        window=window,
        method=cast(Method | None, method),
    )


def parse_rule(text: str | bytes) -> AlertRule:
    """Validate a rule as stored in `alert-rules`: JSON text; `RuleError` saying what is wrong."""
    if len(text) > MAX_RULE_BYTES:
        raise RuleError(f"a rule is at most {MAX_RULE_BYTES} bytes, got {len(text)}")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RuleError(f"not valid JSON: {exc}") from None
    return rule_from_dict(data)
