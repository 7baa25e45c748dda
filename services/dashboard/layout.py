"""The page layout (components only; behaviour lives in callbacks.py)."""

from __future__ import annotations

from itertools import permutations
from typing import Any

from dash import dcc, html

from services.dashboard import ids
from services.dashboard.figures import ChartData, build_figure
from shared import keys
from shared.alert_rules import DEFAULT_COOLDOWN_TEXT, METRICS, OPS
from shared.config import Settings
from shared.views import MAX_WINDOW, METHODS, MIN_WINDOW

DEFAULT_K = 2.0
HISTORY_PRESETS = (
    ("Last 15 minutes", "15m"),
    ("Last hour", "1h"),
    ("Last 6 hours", "6h"),
    ("Last 24 hours", "24h"),
    ("Last 7 days", "7d"),
    ("Everything stored", "all"),
    ("Custom (type from / to below)", "custom"),
)
METHOD_LABELS = {"ols": "OLS", "kalman": "Kalman filter", "huber": "Huber (robust)"}


def _field(label: str, control: Any, hint: str = "") -> html.Label:
    return html.Label(
        className="field",
        title=hint,
        children=[html.Span(label, className="field-label"), control],
    )


def _options(values: Any) -> list[dict[str, str]]:
    return [{"label": str(v), "value": str(v)} for v in values]


def _panel(title: str, *children: Any, class_name: str = "", **kwargs: Any) -> html.Section:
    return html.Section(
        className=f"panel {class_name}".strip(),
        children=[html.H2(title, className="panel-title"), *children],
        **kwargs,
    )


def _controls(settings: Settings) -> html.Section:
    symbols = list(settings.symbols)
    b_default = symbols[1] if len(symbols) > 1 else symbols[0]
    return _panel(
        "View",
        dcc.RadioItems(
            id=ids.MODE,
            className="segmented",
            options=[
                {"label": "Live", "value": "live"},
                {"label": "History", "value": "history"},
                {"label": "Upload", "value": "upload"},
            ],
            value="live",
            inline=True,
        ),
        html.Div(
            className="field-row",
            children=[
                _field(
                    "Symbol A",
                    dcc.Dropdown(
                        id=ids.SYMBOL_A,
                        options=_options(symbols),
                        value=symbols[0],
                        clearable=False,
                        persistence=True,
                        persistence_type="local",
                    ),
                ),
                _field(
                    "Symbol B",
                    dcc.Dropdown(
                        id=ids.SYMBOL_B,
                        options=_options(symbols),
                        value=b_default,
                        clearable=False,
                        persistence=True,
                        persistence_type="local",
                    ),
                ),
            ],
        ),
        html.Div(
            className="field-row",
            children=[
                _field(
                    "Timeframe",
                    dcc.Dropdown(
                        id=ids.TIMEFRAME,
                        options=_options(settings.timeframes),
                        value=settings.timeframes[0],
                        clearable=False,
                        persistence=True,
                        persistence_type="local",
                    ),
                ),
                _field(
                    "Window (bars)",
                    dcc.Input(
                        id=ids.WINDOW,
                        type="number",
                        value=settings.window,
                        min=MIN_WINDOW,
                        max=MAX_WINDOW,
                        step=1,
                        debounce=True,
                        persistence=True,
                        persistence_type="local",
                    ),
                    "Rolling window of the hedge ratio, spread statistics and correlation",
                ),
            ],
        ),
        html.Div(
            className="field-row",
            children=[
                _field(
                    "Hedge ratio",
                    dcc.Dropdown(
                        id=ids.METHOD,
                        options=[{"label": METHOD_LABELS.get(m, m), "value": m} for m in METHODS],
                        value="ols",
                        clearable=False,
                        persistence=True,
                        persistence_type="local",
                    ),
                ),
                _field(
                    "Z threshold ±k",
                    dcc.Input(
                        id=ids.THRESHOLD,
                        type="number",
                        value=DEFAULT_K,
                        min=0.1,
                        max=20,
                        step=0.1,
                        debounce=True,
                        persistence=True,
                        persistence_type="local",
                    ),
                    "Draws ±k lines on the z-score and mean ± k·σ bands on the spread",
                ),
            ],
        ),
        html.Div(
            className="button-row",
            children=[
                html.Button(
                    "Pause",
                    id=ids.LIVE_TOGGLE,
                    className="btn",
                    n_clicks=0,
                    title="Pause or resume live updates",
                ),
                html.Button(
                    "Alert at ±k",
                    id=ids.ALERT_AT_K,
                    className="btn",
                    n_clicks=0,
                    title="Create an alert rule: |z| above this threshold on this view",
                ),
            ],
        ),
        html.Div(id=ids.CONTROL_ERROR, className="error", role="status"),
        class_name="controls",
    )


def _history(settings: Settings) -> html.Section:
    return _panel(
        "History",
        _field(
            "Range",
            dcc.Dropdown(
                id=ids.HISTORY_PRESET,
                options=[{"label": label, "value": value} for label, value in HISTORY_PRESETS],
                value="1h",
                clearable=False,
            ),
        ),
        html.Div(
            className="field-row",
            children=[
                _field(
                    "From (UTC)",
                    dcc.Input(
                        id=ids.HISTORY_FROM,
                        type="text",
                        placeholder="2025-12-16 13:40:00",
                        debounce=True,
                    ),
                    "A typed start wins over the preset; an empty end means now",
                ),
                _field(
                    "To (UTC)",
                    dcc.Input(id=ids.HISTORY_TO, type="text", placeholder="now", debounce=True),
                ),
            ],
        ),
        html.Button("Load range", id=ids.HISTORY_LOAD, className="btn", n_clicks=0),
        html.Div(id=ids.HISTORY_SPAN, className="muted small"),
        id=ids.HISTORY_PANEL,
    )


def _upload(settings: Settings) -> html.Section:
    return _panel(
        "Upload OHLC CSV",
        dcc.Upload(
            id=ids.UPLOAD,
            multiple=True,
            className="dropzone",
            children=html.Div(
                [
                    html.Strong("Drop CSV file(s) or click"),
                    html.Div(
                        "time, symbol, open, high, low, close, volume; or one file per symbol "
                        f"(BTCUSDT.csv). Up to {settings.dash_upload_max_mb:g} MB.",
                        className="muted small",
                    ),
                ]
            ),
        ),
        html.Div(id=ids.UPLOAD_STATUS, className="upload-status", role="status"),
    )


def _export() -> html.Section:
    return _panel(
        "Export",
        html.Button(
            "Download CSV",
            id=ids.EXPORT_BUTTON,
            className="btn",
            n_clicks=0,
            title="Bars of both legs and the statistics on screen (zoomed range if zoomed)",
        ),
        html.Div(id=ids.EXPORT_STATUS, className="muted small", role="status"),
        dcc.Download(id=ids.EXPORT_DOWNLOAD),
    )


def _rule_form(settings: Settings) -> html.Div:
    pairs = [keys.pair_name(a, b) for a, b in permutations(settings.symbols, 2)]
    return html.Div(
        className="rule-form",
        children=[
            html.Div(
                className="field-row wrap",
                children=[
                    _field(
                        "Rule id",
                        dcc.Input(id=ids.RULE_ID, type="text", placeholder="from the name"),
                    ),
                    _field(
                        "Name", dcc.Input(id=ids.RULE_NAME, type="text", placeholder="z above 2")
                    ),
                    _field(
                        "Pair",
                        dcc.Dropdown(
                            id=ids.RULE_PAIR,
                            options=_options(pairs),
                            value=pairs[0] if pairs else None,
                            clearable=False,
                        ),
                    ),
                    _field(
                        "Timeframe",
                        dcc.Dropdown(
                            id=ids.RULE_TF,
                            options=_options(settings.timeframes),
                            value=settings.timeframes[0],
                            clearable=False,
                        ),
                    ),
                    _field(
                        "Metric",
                        dcc.Dropdown(
                            id=ids.RULE_METRIC,
                            options=_options(METRICS),
                            value="zscore",
                            clearable=False,
                        ),
                    ),
                    _field(
                        "Condition",
                        dcc.Dropdown(
                            id=ids.RULE_OP, options=_options(OPS), value="abs>", clearable=False
                        ),
                    ),
                    _field(
                        "Threshold", dcc.Input(id=ids.RULE_THRESHOLD, type="text", placeholder="2")
                    ),
                    _field(
                        "Cooldown (s)",
                        dcc.Input(id=ids.RULE_COOLDOWN, type="text", value=DEFAULT_COOLDOWN_TEXT),
                    ),
                    _field(
                        "Window",
                        dcc.Input(
                            id=ids.RULE_WINDOW,
                            type="text",
                            placeholder=f"default {settings.window}",
                        ),
                    ),
                    _field(
                        "Method",
                        dcc.Dropdown(
                            id=ids.RULE_METHOD, options=_options(METHODS), placeholder="default ols"
                        ),
                    ),
                ],
            ),
            _field(
                "Extra conditions (JSON, optional)",
                dcc.Textarea(
                    id=ids.RULE_CONDITIONS,
                    placeholder='[{"metric": "adf_pvalue", "op": "<", "threshold": 0.05}]',
                    rows=2,
                ),
            ),
            html.Div(
                className="button-row",
                children=[
                    dcc.Checklist(
                        id=ids.RULE_ENABLED,
                        options=[{"label": " enabled", "value": "on"}],
                        value=["on"],
                    ),
                    html.Button(
                        "Save rule", id=ids.RULE_SAVE, className="btn btn-primary", n_clicks=0
                    ),
                    html.Button("Clear", id=ids.RULE_CLEAR, className="btn", n_clicks=0),
                ],
            ),
            html.Div(id=ids.RULE_STATUS, role="status"),
        ],
    )


def _alerts_feed() -> html.Table:
    head = html.Thead(
        html.Tr(
            [html.Th(h) for h in ("time (UTC)", "rule", "pair", "value", "threshold", "message")]
        )
    )
    return html.Table([head, html.Tbody(id=ids.ALERTS_FEED)], className="table feed")


def placeholder_figure(settings: Settings) -> Any:
    a = settings.symbols[0]
    b = settings.symbols[1] if len(settings.symbols) > 1 else a
    chart = ChartData(a, b, settings.timeframes[0])
    message = "Connecting to Redis…"
    return build_figure(
        chart, k=DEFAULT_K, theme=settings.dash_theme, empty={row: message for row in range(1, 6)}
    )


def build_layout(settings: Settings) -> html.Div:
    config = {
        "max_upload_bytes": int(settings.dash_upload_max_mb * 1_048_576),
        "update_ms": settings.dash_update_ms,
    }
    return html.Div(
        id=ids.ROOT,
        className=f"app theme-{settings.dash_theme}",
        children=[
            dcc.Store(id=ids.CONFIG, data=config),
            dcc.Store(id=ids.VIEW),
            dcc.Store(id=ids.CURSOR),
            dcc.Store(id=ids.ZOOM),
            dcc.Store(id=ids.PAUSED, data=False),
            dcc.Store(id=ids.FEED_SAMPLE),
            dcc.Store(id=ids.ALERTS_CURSOR),
            dcc.Store(id=ids.RULES_DIGEST),
            dcc.Store(id=ids.UPLOAD_ACCEPTED),
            dcc.Store(id=ids.UPLOAD_TOKEN),
            dcc.Interval(id=ids.HEALTH_TICK, interval=1_000),
            dcc.Interval(id=ids.LIVE_TICK, interval=settings.dash_update_ms),
            html.Header(
                className="topbar",
                children=[
                    html.H1("Pairs monitor"),
                    html.Div(id=ids.HEALTH_BAR, className="health-bar"),
                    html.Span(id=ids.REDIS_STATUS, className="redis-status"),
                    dcc.RadioItems(
                        id=ids.THEME,
                        className="segmented theme-switch",
                        options=[
                            {"label": "Dark", "value": "dark"},
                            {"label": "Light", "value": "light"},
                        ],
                        value=settings.dash_theme,
                        inline=True,
                        persistence=True,
                        persistence_type="local",
                    ),
                ],
            ),
            html.Div(id=ids.BANNER, className="banner", role="alert"),
            html.Main(
                className="grid",
                children=[
                    html.Aside(
                        className="sidebar",
                        children=[
                            _controls(settings),
                            _history(settings),
                            _upload(settings),
                            _export(),
                        ],
                    ),
                    html.Section(
                        className="chart-area",
                        children=[
                            html.Div(id=ids.CHART_STATUS, className="chart-status"),
                            dcc.Graph(
                                id=ids.GRAPH,
                                figure=placeholder_figure(settings),
                                config={
                                    "displaylogo": False,
                                    "scrollZoom": True,
                                    "responsive": True,
                                },
                                className="graph",
                            ),
                        ],
                    ),
                    html.Aside(
                        className="statsbar",
                        children=[
                            _panel(
                                "Statistics",
                                html.Div(id=ids.STATS, className="stats-grid"),
                                html.Button(
                                    "Run ADF now",
                                    id=ids.ADF_BUTTON,
                                    className="btn",
                                    n_clicks=0,
                                    title="Ask the analytics worker for an "
                                    "ADF and cointegration test on this view now",
                                ),
                                html.Div(id=ids.ADF_STATUS, className="muted small", role="status"),
                            ),
                            _panel("Events", html.Ul(id=ids.EVENTS, className="events")),
                        ],
                    ),
                ],
            ),
            html.Section(
                className="bottom",
                children=[
                    _panel(
                        "Alert rules",
                        html.Div(id=ids.RULES_TABLE),
                        _rule_form(settings),
                        class_name="rules-panel",
                    ),
                    _panel("Fired alerts", _alerts_feed(), class_name="feed-panel"),
                ],
            ),
            html.Div(id=ids.TOAST, className="toast-area", role="status"),
        ],
    )
