"""The dashboard's warm-up renders the view a first visit opens on, from made-up bars."""

from __future__ import annotations

from typing import Any

from services.dashboard import controls, figures, ids, warmup
from services.dashboard.layout import build_layout
from shared.config import load_settings


def _values(component: Any, found: dict[str, Any]) -> dict[str, Any]:
    if isinstance(getattr(component, "id", None), str) and hasattr(component, "value"):
        found[component.id] = component.value
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            _values(child, found)
    return found


def test_the_first_view_is_what_the_controls_show_on_a_first_visit() -> None:
    settings = load_settings(symbols="solusdt,bnbusdt,xrpusdt", window=90, dash_theme="light")
    shown = _values(build_layout(settings), {})
    expected = controls.view_from_controls(
        mode=shown[ids.MODE], a=shown[ids.SYMBOL_A], b=shown[ids.SYMBOL_B],
        tf=shown[ids.TIMEFRAME], window=shown[ids.WINDOW], method=shown[ids.METHOD],
        k=shown[ids.THRESHOLD], theme=shown[ids.THEME],
    )  # fmt: skip
    assert warmup.first_view(settings) == expected


def test_the_warm_up_leaves_the_first_view_styled() -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:1/0")
    figures._styled.cache_clear()
    assert warmup.warm(settings) > 0
    view = warmup.first_view(settings)
    hits = figures._styled.cache_info().hits
    figures._styled(view.a, view.b, view.theme, view.k, view.key, ())
    assert figures._styled.cache_info().hits == hits + 1
