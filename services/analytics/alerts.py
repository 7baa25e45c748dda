"""The alert rule engine: the rules of `alert-rules`, evaluated on every closed bar of their view.

A rule fires when its condition (and every extra condition) becomes true, having been false at the
previous bar of its view, and at most once per `cooldown_s`: a crossing inside the cooldown is
not fired later. Time is the bars' event time, so replays fire as live would. A rule starts
from the view's last statistics (the latest hash after a restart), so it fires on the next
crossing, not merely because its condition already holds. The stationarity fields are carried
from the bar where they were last computed, so `adf_pvalue < 0.05` holds between ADF runs.

A malformed rule, or one naming a pair or timeframe the worker does not serve, is reported once
(per version of its text) and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.alert_rules import AlertRule, RuleError, parse_rule, validate_rule_id
from shared.pairstats import Stationarity
from shared.schemas import PAIR_STAT_METRICS, Alert, PairStat, shown
from shared.views import DEFAULT_METHOD, PairView

STAT_FIELDS = PAIR_STAT_METRICS


@dataclass(eq=False)
class RuleState:
    rule_id: str
    raw: str
    rule: AlertRule
    view: PairView
    previous: bool | None = None
    last_fired: int | None = None


def stat_values(stat: PairStat, carried: Stationarity | None = None) -> dict[str, float]:
    """The metrics a rule can name, with stationarity fields carried from their last run."""
    values: dict[str, float] = {}
    for name in STAT_FIELDS:
        value = getattr(stat, name)
        if isinstance(value, int | float):
            values[name] = float(value)
        elif value is None and carried is not None:
            kept = getattr(carried, name, None)
            if kept is not None:
                values[name] = float(kept)
    return values


def describe(rule: AlertRule, value: float) -> str:
    extra = "".join(f" and {c.metric} {c.op} {c.threshold:g}" for c in rule.conditions)
    return (
        f"{rule.name}: {rule.metric} {rule.op} {rule.threshold:g}{extra} on {rule.pair} "
        f"{rule.tf} ({rule.metric} = {value:.6g})"
    )


class RuleBook:
    """The valid, enabled rules by view, their firing state, and problems to report."""

    def __init__(self, symbols: Sequence[str], timeframes: Sequence[str], window: int) -> None:
        self.symbols = set(symbols)
        self.timeframes = set(timeframes)
        self.window = window
        self.rules: dict[str, RuleState] = {}
        """The valid, enabled rules (`rules_active` in health)."""
        self.invalid: dict[str, str] = {}
        """Stored rules refused, with the reason (`rules_invalid`)."""
        self.disabled: set[str] = set()
        """Stored valid rules with `enabled: false` (`rules_disabled`)."""
        self.unreadable = 0
        """Stored rules whose id (not UTF-8) decodes like another's, so they cannot be read."""
        self._reported: set[tuple[str, str]] = set()
        self.last_fired: dict[str, int] = {}

    def view_of(self, rule: AlertRule) -> PairView:
        a, b = rule.symbols
        return PairView(a, b, rule.tf, rule.window or self.window, rule.method or DEFAULT_METHOD)

    def _check(self, rule_id: str, raw: str) -> AlertRule:
        validate_rule_id(rule_id)
        rule = parse_rule(raw)
        unknown = [s for s in rule.symbols if s not in self.symbols]
        if unknown:
            raise RuleError(f"{', '.join(unknown)} is not in SYMBOLS, so {rule.pair} is not served")
        if rule.tf not in self.timeframes:
            served = ", ".join(sorted(self.timeframes))
            raise RuleError(f"tf {rule.tf} is not in TIMEFRAMES ({served})")
        return rule

    def load(self, stored: Mapping[str, str], count: int | None = None) -> list[str]:
        """Take the rules as stored now; the problems not reported before (one line each).

        Every stored rule ends up in exactly one of `rules`, `disabled` and `invalid`, or is
        counted `unreadable` when the hash holds `count` rules but fewer could be read.
        """
        problems: list[str] = []
        unreadable = max(0, (count or 0) - len(stored))
        if unreadable and unreadable != self.unreadable:
            problems.append(
                f"{unreadable} rule(s) ignored: their ids are not UTF-8 text and read like "
                "another rule's id"
            )
        self.unreadable = unreadable
        kept: dict[str, RuleState] = {}
        self._reported &= set(stored.items())
        invalid: dict[str, str] = {}
        disabled: set[str] = set()
        for rule_id, raw in stored.items():
            current = self.rules.get(rule_id)
            if current is not None and current.raw == raw:
                kept[rule_id] = current
                continue
            try:
                rule = self._check(rule_id, raw)
            except RuleError as exc:
                invalid[rule_id] = str(exc)
                if (rule_id, raw) not in self._reported:
                    self._reported.add((rule_id, raw))
                    problems.append(f"rule {shown(rule_id)} ignored: {exc}")
                continue
            if not rule.enabled:
                disabled.add(rule_id)
                continue
            state = RuleState(rule_id, raw, rule, self.view_of(rule))
            state.last_fired = self.last_fired.get(rule_id)
            kept[rule_id] = state
        self.rules, self.invalid, self.disabled = kept, invalid, disabled
        return problems

    def views(self) -> set[PairView]:
        return {state.view for state in self.rules.values()}

    def watching(self, view_id: str) -> list[RuleState]:
        return [state for state in self.rules.values() if state.view.id == view_id]

    def prime(self, view_id: str, stat: PairStat | None, carried: Stationarity | None) -> None:
        """Rules that have not seen a bar yet take `stat` as their previous bar."""
        if stat is None:
            return
        values = stat_values(stat, carried)
        for state in self.watching(view_id):
            if state.previous is None:
                state.previous = state.rule.holds(values)

    def evaluate(
        self, view_id: str, stats: Iterable[PairStat], carried: Stationarity | None
    ) -> list[Alert]:
        """Run the rules watching a view over its new bars, in order; the alerts fired."""
        watching = self.watching(view_id)
        if not watching:
            return []
        fired: list[Alert] = []
        for stat in stats:
            carried = Stationarity.of(stat) or carried
            values = stat_values(stat, carried)
            for state in watching:
                holds = state.rule.holds(values)
                rising = holds and state.previous is not True
                state.previous = holds
                if not rising:
                    continue
                cooldown_ms = state.rule.cooldown_s * 1000.0
                if state.last_fired is not None and stat.ts - state.last_fired < cooldown_ms:
                    continue
                state.last_fired = self.last_fired[state.rule_id] = stat.ts
                value = values.get(state.rule.metric, math.nan)
                fired.append(
                    Alert(
                        rule=state.rule_id,
                        pair=state.rule.pair,
                        tf=state.rule.tf,
                        metric=state.rule.metric,
                        value=value,
                        threshold=state.rule.threshold,
                        ts=stat.ts,
                        message=describe(state.rule, value),
                    )
                )
        return fired
