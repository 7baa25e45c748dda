"""The page layout (components only; behaviour lives in callbacks.py)."""

from __future__ import annotations

from dash import dcc, html

from services.dashboard import ids
from shared.config import Settings


def build_layout(settings: Settings) -> html.Div:
    return html.Div(
        className="app",
        children=[
            html.Header(
                className="topbar",
                children=[
                    html.H1("Pairs monitor"),
                    html.Span(" / ".join(settings.symbols), className="symbols"),
                    html.Span(id=ids.REDIS_STATUS, className="redis-status"),
                ],
            ),
            html.Div(id=ids.HEALTH_BAR, className="health-bar"),
            dcc.Interval(id=ids.HEALTH_TICK, interval=1_000),
        ],
    )
