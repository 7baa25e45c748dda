"""The page layout (components only; behaviour lives in callbacks.py)."""

from __future__ import annotations

from itertools import permutations
from typing import Any

from dash import dcc, html
from dash.dash_table.DataTable import DataTable

from services.dashboard import ids, screener
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
REMEMBERED: dict[str, Any] = {"persistence": True, "persistence_type": "local"}
"""Controls the browser keeps between visits."""
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


def _dropdown(component_id: str, options: Any, value: Any) -> dcc.Dropdown:
    """A dropdown the browser remembers between visits."""
    return dcc.Dropdown(
        id=component_id, options=options, value=value, clearable=False, **REMEMBERED
    )


def _number(component_id: str, value: float, low: float, high: float, step: float) -> dcc.Input:
    """A number box the browser remembers between visits, applied on Enter or blur."""
    return dcc.Input(
        id=component_id,
        type="number",
        value=value,
        min=low,
        max=high,
        step=step,
        debounce=True,
        **REMEMBERED,
    )


def _row(*fields: Any, class_name: str = "field-row") -> html.Div:
    return html.Div(className=class_name, children=list(fields))


def _button(label: str, component_id: str, title: str, class_name: str = "btn") -> html.Button:
    return html.Button(label, id=component_id, className=class_name, n_clicks=0, title=title)


def _mode_switch(settings: Settings) -> dcc.RadioItems:
    return dcc.RadioItems(
        id=ids.MODE,
        className="segmented",
        options=[
            {"label": "Live", "value": "live"},
            {"label": "History", "value": "history"},
            {"label": "Upload", "value": "upload"},
            {"label": "Screener", "value": "screener"},
        ],
        value=settings.dash_open_view,
        inline=True,
    )


def _symbol_fields(settings: Settings) -> html.Div:
    symbols = list(settings.symbols)
    b_default = symbols[1] if len(symbols) > 1 else symbols[0]
    return _row(
        _field("Symbol A", _dropdown(ids.SYMBOL_A, _options(symbols), symbols[0])),
        _field("Symbol B", _dropdown(ids.SYMBOL_B, _options(symbols), b_default)),
    )


def _window_fields(settings: Settings) -> html.Div:
    return _row(
        _field(
            "Timeframe",
            _dropdown(ids.TIMEFRAME, _options(settings.timeframes), settings.timeframes[0]),
        ),
        _field(
            "Window (bars)",
            _number(ids.WINDOW, settings.window, MIN_WINDOW, MAX_WINDOW, 1),
            "Rolling window of the hedge ratio, spread statistics and correlation",
        ),
    )


def _method_fields() -> html.Div:
    methods = [{"label": METHOD_LABELS.get(m, m), "value": m} for m in METHODS]
    return _row(
        _field("Hedge ratio", _dropdown(ids.METHOD, methods, "ols")),
        _field(
            "Z threshold ±k",
            _number(ids.THRESHOLD, DEFAULT_K, 0.1, 20, 0.1),
            "Draws ±k lines on the z-score and mean ± k·σ bands on the spread",
        ),
    )


def _view_buttons() -> html.Div:
    return _row(
        _button("Pause", ids.LIVE_TOGGLE, "Pause or resume live updates"),
        _button(
            "Alert at ±k",
            ids.ALERT_AT_K,
            "Create an alert rule: |z| above this threshold on this view",
        ),
        class_name="button-row",
    )


def _controls(settings: Settings) -> html.Section:
    return _panel(
        "View",
        _mode_switch(settings),
        _symbol_fields(settings),
        _window_fields(settings),
        _method_fields(),
        _view_buttons(),
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


def _text(component_id: str, **kwargs: Any) -> dcc.Input:
    return dcc.Input(id=component_id, type="text", **kwargs)


def _rule_target_fields(settings: Settings) -> list[html.Label]:
    """Which statistic of which view a rule watches."""
    pairs = [keys.pair_name(a, b) for a, b in permutations(settings.symbols, 2)]
    return [
        _field("Rule id", _text(ids.RULE_ID, placeholder="from the name")),
        _field("Name", _text(ids.RULE_NAME, placeholder="z above 2")),
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
                id=ids.RULE_METRIC, options=_options(METRICS), value="zscore", clearable=False
            ),
        ),
    ]


def _rule_condition_fields(settings: Settings) -> list[html.Label]:
    """When a rule fires, how often, and on which view parameters."""
    return [
        _field(
            "Condition",
            dcc.Dropdown(id=ids.RULE_OP, options=_options(OPS), value="abs>", clearable=False),
        ),
        _field("Threshold", _text(ids.RULE_THRESHOLD, placeholder="2")),
        _field("Cooldown (s)", _text(ids.RULE_COOLDOWN, value=DEFAULT_COOLDOWN_TEXT)),
        _field("Window", _text(ids.RULE_WINDOW, placeholder=f"default {settings.window}")),
        _field(
            "Method",
            dcc.Dropdown(id=ids.RULE_METHOD, options=_options(METHODS), placeholder="default ols"),
        ),
    ]


def _rule_buttons() -> html.Div:
    return _row(
        dcc.Checklist(
            id=ids.RULE_ENABLED,
            options=[{"label": " enabled", "value": "on"}],
            value=["on"],
        ),
        html.Button("Save rule", id=ids.RULE_SAVE, className="btn btn-primary", n_clicks=0),
        html.Button("Clear", id=ids.RULE_CLEAR, className="btn", n_clicks=0),
        class_name="button-row",
    )


def _rule_form(settings: Settings) -> html.Div:
    return html.Div(
        className="rule-form",
        children=[
            _row(
                *_rule_target_fields(settings),
                *_rule_condition_fields(settings),
                class_name="field-row wrap",
            ),
            _field(
                "Extra conditions (JSON, optional)",
                dcc.Textarea(
                    id=ids.RULE_CONDITIONS,
                    placeholder='[{"metric": "adf_pvalue", "op": "<", "threshold": 0.05}]',
                    rows=2,
                ),
            ),
            _rule_buttons(),
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


EMPTY_STORES = (
    ids.VIEW, ids.CURSOR, ids.CHART_STEP, ids.CHART_STEP_DRAWN, ids.CHART_BUSY, ids.ZOOM,
    ids.ZOOM_EVENT, ids.PUSH_TICK, ids.PUSH_STATE, ids.ALERTS_PUSHED, ids.FEED_SAMPLE,
    ids.ALERTS_CURSOR, ids.RULES_DIGEST, ids.UPLOAD_ACCEPTED, ids.UPLOAD_TOKEN,
)  # fmt: skip
"""The browser-side stores that start empty."""


def _stores(settings: Settings) -> list[Any]:
    """The browser-side state (`dcc.Store`) and the two clocks that drive the updates."""
    config = {
        "max_upload_bytes": int(settings.dash_upload_max_mb * 1_048_576),
        "update_ms": settings.dash_update_ms,
    }
    return [
        dcc.Store(id=ids.CONFIG, data=config),
        dcc.Store(id=ids.PAUSED, data=False),
        *(dcc.Store(id=store) for store in EMPTY_STORES),
        dcc.Interval(id=ids.HEALTH_TICK, interval=int(settings.health_interval_s * 1000)),
        dcc.Interval(id=ids.LIVE_TICK, interval=settings.dash_update_ms),
    ]


def _topbar(settings: Settings) -> html.Header:
    return html.Header(
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
                **REMEMBERED,
            ),
        ],
    )


def _chart_area(settings: Settings) -> html.Section:
    return html.Section(
        className="chart-area",
        children=[
            html.Div(id=ids.CHART_STATUS, className="chart-status"),
            html.Div(id=ids.PUSH_STATUS, className="chart-status push-status"),
            dcc.Graph(
                id=ids.GRAPH,
                figure=placeholder_figure(settings),
                config={"displaylogo": False, "scrollZoom": True, "responsive": True},
                className="graph",
            ),
        ],
    )


def _screener_area(settings: Settings) -> html.Section:
    """Every served pair at the chosen timeframe, window and method; a click opens it in Live."""
    columns = []
    for column in screener.COLUMNS:
        spec: dict[str, Any] = {"id": column.id, "name": column.name, "type": column.kind}
        if column.kind == "numeric":
            spec["format"] = {"specifier": f",.{column.digits}f"}
        columns.append(spec)
    conditions = [
        {"label": f" coint p < {screener.COINT_P:g}", "value": "cointegrated"},
        {"label": " |z| > k", "value": "stretched"},
    ]
    return html.Section(
        id=ids.SCREENER_AREA,
        className="screener-area",
        children=[
            html.Div(id=ids.SCREENER_STATUS, className="chart-status", role="status"),
            _row(
                dcc.Checklist(
                    id=ids.SCREENER_CONDITIONS,
                    options=conditions,
                    value=[],
                    inline=True,
                    className="screener-conditions",
                ),
                _field(
                    "Symbol contains",
                    _text(ids.SCREENER_CONTAINS, placeholder="BTC", debounce=True),
                ),
                _button("Download CSV", ids.SCREENER_EXPORT, "The rows that pass the filters"),
                class_name="field-row screener-controls",
            ),
            DataTable(
                id=ids.SCREENER_TABLE,
                columns=columns,  # type: ignore[arg-type]
                data=[],
                sort_action="native",
                sort_by=[{"column_id": "coint_pvalue", "direction": "asc"}],
                filter_action="native",
                filter_query="",
                page_action="none",
                fixed_rows={"headers": True},
                style_table={"maxHeight": "560px", "overflowY": "auto"},
                style_cell={
                    "fontFamily": "inherit",
                    "fontSize": "13px",
                    "padding": "4px 8px",
                    "backgroundColor": "transparent",
                    "color": "inherit",
                },
                style_header={"fontWeight": "600", "whiteSpace": "normal", "height": "auto"},
                style_cell_conditional=[
                    {"if": {"column_id": "pair"}, "textAlign": "left", "minWidth": "150px"},
                ],
                style_data_conditional=screener.colours(DEFAULT_K),
                cell_selectable=True,
            ),
            dcc.Graph(
                id=ids.SCREENER_HEATMAP,
                figure=screener.heatmap(None, settings.dash_theme),
                config={"displaylogo": False},
            ),
            dcc.Download(id=ids.SCREENER_DOWNLOAD),
            dcc.Interval(id=ids.SCREENER_TICK, interval=settings.dash_update_ms, disabled=True),
            dcc.Store(id=ids.SCREENER_HELD),
        ],
    )


def _statsbar() -> html.Aside:
    return html.Aside(
        className="statsbar",
        children=[
            _panel(
                "Statistics",
                html.Div(id=ids.STATS, className="stats-grid"),
                _button(
                    "Run ADF now",
                    ids.ADF_BUTTON,
                    "Ask the analytics worker for an ADF and cointegration test on this view now",
                ),
                html.Div(id=ids.ADF_STATUS, className="muted small", role="status"),
            ),
            _panel("Events", html.Ul(id=ids.EVENTS, className="events")),
        ],
    )


def _main(settings: Settings) -> html.Main:
    sidebar = [_controls(settings), _history(settings), _upload(settings), _export()]
    return html.Main(
        className="grid",
        children=[
            html.Aside(className="sidebar", children=sidebar),
            _chart_area(settings),
            _screener_area(settings),
            _statsbar(),
        ],
    )


def _bottom(settings: Settings) -> html.Section:
    return html.Section(
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
    )


def build_layout(settings: Settings) -> html.Div:
    return html.Div(
        id=ids.ROOT,
        className=f"app theme-{settings.dash_theme}",
        children=[
            *_stores(settings),
            _topbar(settings),
            html.Div(id=ids.BANNER, className="banner", role="alert"),
            _main(settings),
            _bottom(settings),
            html.Div(id=ids.TOAST, className="toast-area", role="status"),
        ],
    )
