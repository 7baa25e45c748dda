"""Controls to a validated view: ranges, windows, thresholds, modes, and the zoomed range."""

from __future__ import annotations

from typing import Any

import pytest

from services.dashboard.controls import resolve_range, view_from_controls, zoom_from_relayout
from services.dashboard.formatting import parse_utc
from services.dashboard.selection import Selection

NOW = parse_utc("2025-12-16 14:00:00")
SPAN = (parse_utc("2025-12-16 13:41:38"), parse_utc("2025-12-16 13:44:38"))


def controls(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "mode": "live", "a": "BTCUSDT", "b": "ETHUSDT", "tf": "1s", "window": 60,
        "method": "ols", "k": 2.0, "theme": "dark",
    }  # fmt: skip
    values.update(overrides)
    return values


def test_presets_are_relative_to_now_and_all_is_the_stored_span() -> None:
    assert resolve_range("1h", None, None, NOW, SPAN) == (NOW - 3_600_000, NOW)
    assert resolve_range("7d", None, None, NOW, None) == (NOW - 7 * 86_400_000, NOW)
    assert resolve_range("all", None, None, NOW, SPAN) == (SPAN[0], SPAN[1] + 1)


def test_custom_range_reads_typed_utc_times() -> None:
    start, end = resolve_range("custom", "2025-12-16 13:40", "2025-12-16 13:45", NOW, SPAN)
    assert (start, end) == (parse_utc("2025-12-16 13:40"), parse_utc("2025-12-16 13:45"))
    assert resolve_range("custom", "2025-12-16 13:40", "now", NOW, SPAN)[1] == NOW
    assert resolve_range("custom", "2025-12-16 13:40", "", NOW, SPAN)[1] == NOW
    # A typed start wins over a preset.
    assert resolve_range("1h", "2025-12-16 13:40", None, NOW, SPAN)[0] == start
    assert resolve_range("all", "2025-12-16 13:40", None, NOW, None) == (start, NOW)


@pytest.mark.parametrize(
    ("preset", "start", "end", "span", "reason"),
    [
        ("all", None, None, None, "no ticks are stored yet"),
        ("custom", "", None, SPAN, "type a start time"),
        ("custom", "13:40", None, SPAN, "is not a UTC time"),
        ("custom", "2025-12-16 13:45", "2025-12-16 13:40", SPAN, "is not before the end"),
    ],
)
def test_bad_ranges_say_why(
    preset: str, start: str | None, end: str | None, span: Any, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        resolve_range(preset, start, end, NOW, span)


def test_a_valid_view_round_trips_through_the_store() -> None:
    view = view_from_controls(**controls(window="120", method="kalman", k="2.5"))
    assert (view.window, view.method, view.k) == (120, "kalman", 2.5)
    assert view.pair_view().id == "BTCUSDT-ETHUSDT:1s:w120:kalman"
    assert Selection.from_store(view.to_store()) == view


def test_the_key_changes_with_what_is_drawn_so_zoom_resets_only_then() -> None:
    base = view_from_controls(**controls())
    assert view_from_controls(**controls()).key == base.key
    for change in ({"window": 61}, {"k": 3}, {"theme": "light"}, {"tf": "1m"}, {"b": "SOLUSDT"}):
        assert view_from_controls(**controls(**change)).key != base.key
    history = view_from_controls(**controls(mode="history"), history=(1, 2))
    assert history.key != base.key and (history.start_ms, history.end_ms) == (1, 2)
    assert view_from_controls(**controls(mode="upload"), upload="abc").upload == "abc"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"b": "BTCUSDT"}, "pick two different symbols"),
        ({"a": None}, "pick symbols A and B"),
        ({"window": 2}, "whole number of 3 to 100,000"),
        ({"window": 60.5}, "whole number"),
        ({"window": "sixty"}, "is not a number of bars"),
        ({"window": None}, "type a window"),
        ({"k": 0}, "z threshold"),
        ({"k": "big"}, "z threshold"),
        ({"method": "magic"}, "pick a hedge-ratio method"),
        ({"mode": "replay"}, "mode 'replay'"),
    ],
)
def test_bad_controls_say_why(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        view_from_controls(**controls(**change))


def test_history_and_upload_views_need_their_data() -> None:
    with pytest.raises(ValueError, match="start before its end"):
        view_from_controls(**controls(mode="history"))
    with pytest.raises(ValueError, match="upload a CSV file first"):
        view_from_controls(**controls(mode="upload"))
    with pytest.raises(ValueError, match="no view chosen"):
        Selection.from_store(None)


def test_zoom_from_plotly_relayout_events() -> None:
    start, end = "2025-12-16 13:42:00", "2025-12-16 13:43:00.5"
    expected = (parse_utc(start), parse_utc("2025-12-16 13:43:00.5"))
    assert zoom_from_relayout({"xaxis.range[0]": start, "xaxis.range[1]": end}) == expected
    assert zoom_from_relayout({"xaxis3.range[0]": start, "xaxis3.range[1]": end}) == expected
    assert zoom_from_relayout({"xaxis.range": [end, start]}) == expected
    assert zoom_from_relayout({"xaxis.autorange": True}) == "reset"
    assert zoom_from_relayout({"yaxis.range[0]": 1, "yaxis.range[1]": 2}) is None
    assert zoom_from_relayout({"dragmode": "pan"}) is None
    assert zoom_from_relayout(None) is None
