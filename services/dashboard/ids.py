"""Component ids, in one place so layout, callbacks and browser tests cannot disagree."""

ROOT = "root"
THEME = "theme"
CONFIG = "config"

# Health bar.
HEALTH_TICK = "health-tick"
HEALTH_BAR = "health-bar"
REDIS_STATUS = "redis-status"
BANNER = "banner"
EVENTS = "events"
FEED_SAMPLE = "feed-sample"
SERVICE_CHIP = "service-chip"

# Controls.
MODE = "mode"
SYMBOL_A = "symbol-a"
SYMBOL_B = "symbol-b"
TIMEFRAME = "timeframe"
WINDOW = "window"
METHOD = "method"
THRESHOLD = "threshold"
LIVE_TOGGLE = "live-toggle"
PAUSED = "paused"
CONTROL_ERROR = "control-error"
VIEW = "view"

# Chart.
LIVE_TICK = "live-tick"
CURSOR = "cursor"
"""What the page has drawn of the live view (`cursor.py`): set with each full render, and by the
page after each step it draws."""
GRAPH = "chart"
CHART_STEP = "chart-step"
"""The points a live step appends; the page's `extend` script (clientside.py) draws them."""
CHART_STEP_DRAWN = "chart-step-drawn"
CHART_STATUS = "chart-status"
ZOOM = "zoom"
PUSH_TICK = "push-tick"
"""Set by the page when the server pushes news of its view's streams (push.py)."""
PUSH_STATE = "push-state"
CHART_BUSY = "chart-busy"
"""True while the chart callback runs: the page holds pushed news back meanwhile."""
ALERTS_PUSHED = "alerts-pushed"
"""Set by the page when a pushed event names the alerts stream: the feed reads its new rows."""
PUSH_STATUS = "push-status"
ZOOM_EVENT = "zoom-event"
"""The chart's `relayoutData` when it is about the time range (clientside.py filters it)."""

# Statistics.
STATS = "stats"
ADF_BUTTON = "adf-button"
ADF_STATUS = "adf-status"

# History.
HISTORY_PANEL = "history-panel"
HISTORY_PRESET = "history-preset"
HISTORY_FROM = "history-from"
HISTORY_TO = "history-to"
HISTORY_LOAD = "history-load"
HISTORY_SPAN = "history-span"

# Upload.
UPLOAD = "upload"
UPLOAD_ACCEPTED = "upload-accepted"
UPLOAD_STATUS = "upload-status"
UPLOAD_TOKEN = "upload-token"

# Export.
EXPORT_BUTTON = "export-button"
EXPORT_DOWNLOAD = "export-download"
EXPORT_STATUS = "export-status"

# Alert rules.
RULES_TABLE = "rules-table"
RULES_DIGEST = "rules-digest"
RULE_TOGGLE = "rule-toggle"
RULE_EDIT = "rule-edit"
RULE_DELETE = "rule-delete"
RULE_ID = "rule-id"
RULE_NAME = "rule-name"
RULE_PAIR = "rule-pair"
RULE_TF = "rule-tf"
RULE_METRIC = "rule-metric"
RULE_OP = "rule-op"
RULE_THRESHOLD = "rule-threshold"
RULE_COOLDOWN = "rule-cooldown"
RULE_WINDOW = "rule-window"
RULE_METHOD = "rule-method"
RULE_CONDITIONS = "rule-conditions"
RULE_ENABLED = "rule-enabled"
RULE_SAVE = "rule-save"
RULE_CLEAR = "rule-clear"
RULE_STATUS = "rule-status"
ALERT_AT_K = "alert-at-k"
RULE_FORM = {
    "id": RULE_ID,
    "name": RULE_NAME,
    "pair": RULE_PAIR,
    "tf": RULE_TF,
    "metric": RULE_METRIC,
    "op": RULE_OP,
    "threshold": RULE_THRESHOLD,
    "cooldown_s": RULE_COOLDOWN,
    "window": RULE_WINDOW,
    "method": RULE_METHOD,
    "conditions": RULE_CONDITIONS,
    "enabled": RULE_ENABLED,
}
"""The rule form's inputs by the field names of `forms.py`, in the order of the form."""

# Fired alerts.
ALERTS_FEED = "alerts-feed"
ALERTS_CURSOR = "alerts-cursor"
TOAST = "toast"

# The screener.
SCREENER_AREA = "screener-area"
SCREENER_TABLE = "screener-table"
SCREENER_STATUS = "screener-status"
SCREENER_CONDITIONS = "screener-conditions"
SCREENER_CONTAINS = "screener-contains"
SCREENER_HEATMAP = "screener-heatmap"
SCREENER_TICK = "screener-tick"
SCREENER_HELD = "screener-held"
"""The rows the page holds: the series, the pairs in order and a digest per row."""
SCREENER_EXPORT = "screener-export"
SCREENER_DOWNLOAD = "screener-download"
