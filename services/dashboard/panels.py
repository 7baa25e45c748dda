"""Pure builders of the page's dynamic parts: health bar, banners, events, statistics, alert
rules and the fired-alerts feed. Records in, Dash components out; no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dash import html

from services.dashboard import ids
from services.dashboard.formatting import (
    DASH,
    clock_utc,
    fmt_age,
    fmt_count,
    fmt_duration,
    fmt_number,
    fmt_price,
    fmt_pvalue,
)
from services.dashboard.records import FeedHealth, PipelineHealth, RuleRow, ServiceHealth
from shared.alert_rules import AlertRule
from shared.config import timeframe_ms
from shared.health import (
    ALERTS_FIRED,
    BACKFILL_WAITING,
    LAG_ENTRIES,
    LAST_ERROR,
    PROBLEM,
    TICKS,
    Counter,
)
from shared.schemas import Alert, Event, PairStat

SIGNIFICANCE = 0.05
DOWN_STATES = ("disconnected", "stale", "connect_failed")
TICK_SILENCE_MS = 15_000
"""No tick for this long while the feed says connected is worth a warning."""

KEY_COUNTERS: dict[str, tuple[tuple[str, str], ...]] = {
    "ingestor": ((TICKS, "ticks"),),
    "writer": ((LAG_ENTRIES, "lag"),),
    "analytics": ((ALERTS_FIRED, "alerts"),),
    "dashboard": (),
}
"""(counter, label) shown on each service's chip where present; all are in its tooltip."""


def message(text: str, tone: str = "") -> html.Div:
    return html.Div(text, className=f"message {tone}".strip())


# Health ---------------------------------------------------------------------------------------


def _chip(service: ServiceHealth) -> html.Div:
    state = service.status if service.age_ms is None or not service.stale else "stale"
    shown = [
        html.Span(f"{label} {_counter(service.counters[name])}", className="chip-counter")
        for name, label in KEY_COUNTERS.get(service.service, ())
        if name in service.counters
    ]
    if service.counters.get("source") == "synthetic":
        made_up = "SOURCE=synthetic: made-up trades, not Binance's"
        shown.insert(0, html.Span("SYNTHETIC market", className="chip-synthetic", title=made_up))
    age = "" if service.age_ms is None else fmt_age(service.age_ms)
    status = age if state == "ok" else f"{state} {age}".strip()
    return html.Div(
        className=f"chip chip-{state}",
        id={"type": ids.SERVICE_CHIP, "service": service.service},
        children=[
            html.Span(className="dot"),
            html.Strong(service.service),
            html.Span(status, className="chip-status", title="status, heartbeat age"),
            *shown,
        ],
        title=", ".join(f"{k}={v}" for k, v in sorted(service.counters.items())) or "no counters",
    )


def _counter(value: str) -> str:
    try:
        return fmt_count(float(value))
    except ValueError:
        return value


def tick_rates(
    feeds: Sequence[FeedHealth], previous: dict[str, Any] | None, at_ms: int
) -> dict[str, float | None]:
    """Ticks per second of each symbol from the change of its stream's `entries-added` since the
    previous sample (kept by the browser); None on the first sample."""
    rates: dict[str, float | None] = {}
    before = (previous or {}).get("added", {})
    then = (previous or {}).get("at", 0)
    for feed in feeds:
        old = before.get(feed.symbol)
        if feed.added is None or old is None or at_ms <= then:
            rates[feed.symbol] = None
        else:
            rates[feed.symbol] = max(0.0, (feed.added - old) * 1000 / (at_ms - then))
    return rates


def feed_sample(health: PipelineHealth) -> dict[str, Any]:
    return {"at": health.at_ms, "added": {f.symbol: f.added for f in health.feeds}}


def _feed_chip(feed: FeedHealth, rate: float | None, at_ms: int) -> html.Div:
    down = feed.state in DOWN_STATES
    rate_text = DASH if rate is None else f"{rate:,.1f}/s"
    lag = DASH if feed.writer_lag is None else fmt_count(feed.writer_lag)
    last = (
        "no ticks yet"
        if feed.last_tick_ms is None
        else (f"last tick {fmt_age(at_ms - feed.last_tick_ms)} ago")
    )
    return html.Div(
        className="chip " + ("chip-stale" if down else "chip-ok"),
        children=[
            html.Span(className="dot"),
            html.Strong(feed.symbol),
            html.Span(rate_text, className="chip-counter", title="ticks per second"),
            html.Span(
                f"lag {lag}",
                className="chip-counter",
                title="writer lag: ticks in Redis not yet stored in SQLite",
            ),
        ],
        title=f"feed {feed.state}; {last}; writer lag {lag} ticks",
    )


def backfill_banners(counters: Mapping[str, Counter]) -> list[str]:
    """`Back-filling 523 trade ids of BTCUSDT from REST.` per symbol with a gap being filled."""
    out = []
    for name, value in counters.items():
        symbol = name.removeprefix(BACKFILL_WAITING)
        if symbol != name and str(value).isdigit() and int(value) > 0:
            out.append(f"Back-filling {int(value):,} trade ids of {symbol} from REST.")
    return out


def banners(health: PipelineHealth) -> list[str]:
    """Plain sentences for whatever needs attention now; empty when all is well."""
    if not health.redis_ok:
        return [f"Redis is unreachable: {health.redis_error}. Showing the last data received."]
    out = []
    for service in health.services:
        if service.service == "dashboard":
            continue
        if service.age_ms is None:
            out.append(f"{service.service} has never reported: is it running?")
        elif service.status == "stopped":
            out.append(f"{service.service} stopped {fmt_age(service.age_ms)} ago.")
        elif service.status == "stopping":
            out.append(f"{service.service} is stopping (finishing its in-flight work).")
        elif service.stale:
            out.append(f"{service.service} is stale: no heartbeat for {fmt_age(service.age_ms)}.")
        elif service.status == "degraded":
            counters = service.counters
            why = counters.get(PROBLEM) or counters.get(LAST_ERROR) or ""
            out.append(f"{service.service} reports degraded service{': ' + why if why else ''}.")
        if service.service == "ingestor" and not service.stale:
            out.extend(backfill_banners(service.counters))
    for feed in health.feeds:
        if feed.state in DOWN_STATES:
            since = "" if feed.state_ms is None else f" since {clock_utc(feed.state_ms)} UTC"
            detail = f" ({feed.state_detail})" if feed.state_detail else ""
            state = feed.state.replace("_", " ")
            out.append(f"Feed {feed.symbol} is {state}{since}{detail}.")
        elif (
            feed.state == "connected"
            and feed.last_tick_ms is not None
            and health.at_ms - feed.last_tick_ms > TICK_SILENCE_MS
        ):
            out.append(f"No {feed.symbol} tick for {fmt_age(health.at_ms - feed.last_tick_ms)}.")
    return out


def health_bar(
    health: PipelineHealth, rates: dict[str, float | None]
) -> tuple[list[html.Div], str, list[html.Div]]:
    """(chips, Redis status text, banner components)."""
    messages = banners(health)
    banner = [html.Div(message, className="banner-line") for message in messages]
    if not health.redis_ok:
        return [], "Redis: down", banner
    chips = [_chip(service) for service in health.services]
    chips += [_feed_chip(f, rates.get(f.symbol), health.at_ms) for f in health.feeds]
    return chips, "Redis: ok", banner


def events_list(events: Sequence[Event], at_ms: int, count: int = 8) -> list[html.Li] | html.Div:
    if not events:
        return html.Div(
            "No events yet (connections, reconnects, gaps appear here).", className="empty"
        )
    return [
        html.Li(
            className=f"event event-{event.kind}",
            children=[
                html.Span(clock_utc(event.ts), className="time"),
                html.Span(event.kind, className="kind"),
                html.Span(
                    f"{event.service}{' ' + event.symbol if event.symbol else ''}", className="who"
                ),
                html.Span(event.detail, className="detail"),
            ],
            title=f"{fmt_age(at_ms - event.ts)} ago",
        )
        for event in events[:count]
    ]


# Statistics -----------------------------------------------------------------------------------


def _stat(label: str, value: str, note: str = "", tone: str = "", hint: str = "") -> html.Div:
    return html.Div(
        className=f"stat {tone}".strip(),
        title=hint,
        children=[
            html.Div(label, className="stat-label"),
            html.Div(value, className="stat-value"),
            html.Div(note, className="stat-note"),
        ],
    )


def verdict(pvalue: float | None, kind: str = "stationary") -> tuple[str, str]:
    if pvalue is None or not math.isfinite(pvalue):
        return "not computed yet", "muted"
    if pvalue < SIGNIFICANCE:
        return f"{kind} at 5%", "good"
    return f"not {kind} at 5%", "warn"


def _half_life(stat: PairStat, tf: str) -> tuple[str, str]:
    if stat.half_life is None or not math.isfinite(stat.half_life) or stat.half_life <= 0:
        return DASH, "no mean reversion measured" if stat.half_life is not None else ""
    seconds = stat.half_life * timeframe_ms(tf) / 1000
    return f"{fmt_number(stat.half_life, 1)} bars", fmt_duration(seconds)


def stats_panel(
    stat: PairStat | None,
    adf: dict[str, float],
    *,
    tf: str,
    k: float,
    waiting: str = "",
) -> list[html.Div]:
    """The statistics of the newest bar; ADF/cointegration values from the newest bar that has
    them (`adf`), since the worker computes those less often than every bar."""
    if stat is None:
        return [html.Div(waiting or "Waiting for the first statistics.", className="empty")]
    adf_stat = stat.adf_stat if stat.adf_stat is not None else adf.get("adf_stat")
    adf_p = stat.adf_pvalue if stat.adf_pvalue is not None else adf.get("adf_pvalue")
    coint_p = stat.coint_pvalue if stat.coint_pvalue is not None else adf.get("coint_pvalue")
    half = stat if stat.half_life is not None else None
    adf_text, adf_tone = verdict(adf_p)
    coint_text, coint_tone = verdict(coint_p, "cointegrated")
    half_value, half_note = _half_life(half, tf) if half else (DASH, "")
    if half is None and adf.get("half_life") is not None:
        seconds = adf["half_life"] * timeframe_ms(tf) / 1000
        half_value, half_note = f"{fmt_number(adf['half_life'], 1)} bars", fmt_duration(seconds)
    z_tone = "alert" if math.isfinite(stat.zscore) and abs(stat.zscore) > k else ""
    return [
        _stat(
            "Hedge ratio β",
            fmt_number(stat.beta, 4),
            stat.method.upper(),
            hint="A = α + β·B over the window",
        ),
        _stat("Intercept α", fmt_number(stat.alpha, 2)),
        _stat(
            "Spread",
            fmt_price(stat.spread),
            f"mean {fmt_price(stat.spread_mean)} · σ {fmt_price(stat.spread_std)}",
        ),
        _stat("Z-score", fmt_number(stat.zscore, 2), f"threshold ± {k:g}", z_tone),
        _stat("Correlation", fmt_number(stat.corr, 3), "log returns"),
        _stat(
            "ADF statistic",
            fmt_number(adf_stat, 3),
            f"p = {fmt_pvalue(adf_p)}",
            hint="Augmented Dickey-Fuller test on the spread",
        ),
        _stat("ADF verdict", adf_text, "spread stationarity", adf_tone),
        _stat("Half-life", half_value, half_note, hint="of mean reversion of the spread"),
        _stat(
            "Cointegration p",
            fmt_pvalue(coint_p),
            coint_text,
            coint_tone,
            hint="Engle-Granger test",
        ),
        _stat(
            "Bars in window",
            f"{stat.n:,} / {stat.window:,}",
            "window full" if stat.n >= stat.window else "filling",
        ),
        _stat("Prices", f"{fmt_price(stat.price_a)} / {fmt_price(stat.price_b)}", "A / B"),
        _stat("Last bar", clock_utc(stat.ts) + " UTC", f"{tf} bar"),
    ]


# Alerts ---------------------------------------------------------------------------------------


def condition_text(rule: AlertRule) -> str:
    main = f"{rule.metric} {rule.op} {rule.threshold:g}"
    extra = [f"{c.metric} {c.op} {c.threshold:g}" for c in rule.conditions]
    return " and ".join([main, *extra])


def view_text(rule: AlertRule, default_window: int) -> str:
    window = rule.window or default_window
    return f"w{window} {rule.method or 'ols'}"


def _rule_button(kind: str, rule_id: str, label: str, title: str) -> html.Button:
    return html.Button(
        label,
        id={"type": kind, "rule": rule_id},
        className="btn btn-small",
        title=title,
        n_clicks=0,
    )


def rules_table(rows: Sequence[RuleRow], default_window: int) -> html.Table | html.Div:
    if not rows:
        return html.Div(
            "No alert rules yet. Create one below, or use “Alert at ±k” beside the threshold.",
            className="empty",
        )
    body = []
    for row in rows:
        rule = row.rule
        if rule is None:
            cells = [
                html.Td(row.rule_id),
                html.Td(f"invalid rule: {row.error}", colSpan=5, className="error"),
            ]
            state = "invalid"
        else:
            state = "on" if rule.enabled else "off"
            cells = [
                html.Td(row.rule_id, className="mono"),
                html.Td(rule.name),
                html.Td(f"{rule.pair} {rule.tf}", className="mono"),
                html.Td(condition_text(rule), className="mono"),
                html.Td(view_text(rule, default_window), className="mono"),
                html.Td(f"{rule.cooldown_s:g} s", className="num"),
            ]
        toggle = "Disable" if state == "on" else "Enable"
        actions = html.Td(
            className="actions",
            children=[
                _rule_button(ids.RULE_TOGGLE, row.rule_id, toggle, f"{toggle} this rule")
                if rule is not None
                else None,
                _rule_button(ids.RULE_EDIT, row.rule_id, "Edit", "Load into the form"),
                _rule_button(ids.RULE_DELETE, row.rule_id, "Delete", "Delete this rule"),
            ],
        )
        body.append(html.Tr([*cells, actions], className=f"rule rule-{state}"))
    head = html.Thead(
        html.Tr([html.Th(h) for h in ("id", "name", "pair", "condition", "view", "cooldown", "")])
    )
    return html.Table([head, html.Tbody(body)], className="table rules")


def alert_row(alert: Alert) -> html.Tr:
    return html.Tr(
        className="alert-row",
        children=[
            html.Td(clock_utc(alert.ts), className="mono"),
            html.Td(alert.rule, className="mono"),
            html.Td(f"{alert.pair} {alert.tf}", className="mono"),
            html.Td(f"{alert.metric} {fmt_number(alert.value)}", className="mono"),
            html.Td(fmt_number(alert.threshold), className="num"),
            html.Td(alert.message),
        ],
    )


def alerts_feed(alerts: Sequence[Alert]) -> list[html.Tr]:
    """Rows of the fired-alerts table, newest first (one row saying so when there are none)."""
    if not alerts:
        return [html.Tr(html.Td("No alert has fired yet.", colSpan=6, className="empty"))]
    return [alert_row(alert) for alert in alerts]


def toast(alert: Alert, serial: int) -> html.Div:
    """A notification for a fired alert; `serial` makes each new one restart its animation."""
    return html.Div(
        key=f"toast-{serial}",
        className="toast",
        role="alert",
        children=[
            html.Strong(f"Alert {alert.rule}"),
            html.Div(
                f"{alert.pair} {alert.tf}: {alert.metric} {fmt_number(alert.value)} "
                f"crossed {fmt_number(alert.threshold)}"
            ),
            html.Div(alert.message, className="toast-detail") if alert.message else None,
        ],
    )
