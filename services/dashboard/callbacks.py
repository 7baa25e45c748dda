"""Callback wiring: ids -> data.py reads -> components. No logic worth testing lives here."""

from __future__ import annotations

import redis
from dash import Dash, Input, Output, html

from services.dashboard import ids
from services.dashboard.data import PipelineHealth, ServiceHealth, read_health


def _age(age_ms: int | None) -> str:
    if age_ms is None:
        return "never"
    return f"{age_ms / 1000:.1f}s ago"


def _service_chip(service: ServiceHealth) -> html.Div:
    state = "stale" if service.stale else service.status
    return html.Div(
        className=f"chip chip-{state}",
        children=[
            html.Strong(service.service),
            html.Span(f" {service.status} · {_age(service.age_ms)}"),
        ],
        title=", ".join(f"{k}={v}" for k, v in sorted(service.counters.items())),
    )


def render_health(health: PipelineHealth) -> tuple[list[html.Div], str]:
    if not health.redis_ok:
        banner = html.Div(className="banner", children=f"Redis unreachable: {health.redis_error}")
        return [banner], "redis: down"
    return [_service_chip(s) for s in health.services], "redis: ok"


def register_callbacks(app: Dash, client: redis.Redis) -> None:
    @app.callback(
        Output(ids.HEALTH_BAR, "children"),
        Output(ids.REDIS_STATUS, "children"),
        Input(ids.HEALTH_TICK, "n_intervals"),
    )
    def update_health(_: int | None) -> tuple[list[html.Div], str]:
        return render_health(read_health(client))
