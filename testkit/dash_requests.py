"""The chart callback's request as the page sends it (`/_dash-update-component`), for the
benchmarks and the tests that drive the app without a browser."""

from __future__ import annotations

from typing import Any

from services.dashboard import ids
from services.dashboard.screener_callbacks import UPDATED

CHART_OUTPUT = (
    "..chart.figure...chart-step.data...cursor.data...stats.children...chart-status.children.."
)
CHART_OUTPUTS = [
    {"id": ids.GRAPH, "property": "figure"},
    {"id": ids.CHART_STEP, "property": "data"},
    {"id": ids.CURSOR, "property": "data"},
    {"id": ids.STATS, "property": "children"},
    {"id": ids.CHART_STATUS, "property": "children"},
]


def chart_request(view: dict[str, Any], cursor: Any, trigger: str, n: int) -> dict[str, Any]:
    """A request of the chart callback for `view` (the view store), triggered by `trigger`."""
    return {
        "output": CHART_OUTPUT,
        "outputs": CHART_OUTPUTS,
        "inputs": [
            {"id": ids.LIVE_TICK, "property": "n_intervals", "value": n},
            {"id": ids.VIEW, "property": "data", "value": view},
            {"id": ids.PAUSED, "property": "data", "value": False},
            {"id": ids.ZOOM, "property": "data", "value": None},
            {"id": ids.PUSH_TICK, "property": "data", "value": None},
        ],
        "state": [{"id": ids.CURSOR, "property": "data", "value": cursor}],
        "changedPropIds": [trigger],
    }


def screener_request(
    held: Any, n: int, series: tuple[str, int, str], theme: str = "dark"
) -> dict[str, Any]:
    """A request of the screener's update callback (`screener_callbacks.UPDATED`) on its tick,
    for the series (timeframe, window, method), from what the page holds (`held`)."""
    outputs = [{"id": component, "property": prop} for component, prop in UPDATED]
    tf, window, method = series
    return {
        "output": ".." + "...".join(f"{o['id']}.{o['property']}" for o in outputs) + "..",
        "outputs": outputs,
        "inputs": [
            {"id": ids.SCREENER_TICK, "property": "n_intervals", "value": n},
            {"id": ids.MODE, "property": "value", "value": "screener"},
            {"id": ids.TIMEFRAME, "property": "value", "value": tf},
            {"id": ids.WINDOW, "property": "value", "value": window},
            {"id": ids.METHOD, "property": "value", "value": method},
        ],
        "state": [
            {"id": ids.SCREENER_HELD, "property": "data", "value": held},
            {"id": ids.THEME, "property": "value", "value": theme},
        ],
        "changedPropIds": [f"{ids.SCREENER_TICK}.n_intervals"],
    }
