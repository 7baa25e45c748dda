"""What the callbacks decide, without Dash: views, the chart plan, zoom, the alerts feed, health,
ADF requests, downloads and uploads, on the recorded trades."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from dash import Patch, html

from services.dashboard import controller, ids, status
from services.dashboard.controller import AlertsCursor, ViewControls
from services.dashboard.export import Export
from services.dashboard.formatting import short_utc
from services.dashboard.records import START, PipelineHealth, ServiceHealth
from services.dashboard.upload import UploadError
from shared.schemas import Alert
from testkit.recorded import market_trades
from tests.dashboard_support import recorded_bars, rolling_stats

NOW = 1_765_900_000_000
LIVE = {"mode": "live", "a": "BTCUSDT", "b": "ETHUSDT", "tf": "1s", "window": 60,
        "method": "ols", "k": 2.0, "theme": "dark"}  # fmt: skip


def chosen(**overrides: Any) -> ViewControls:
    values: dict[str, Any] = {**LIVE, "upload_token": None, "preset": "1h", "start": None,
                              "end": None}  # fmt: skip
    values.update(overrides)
    return ViewControls(**values)


def recorded_spans() -> dict[str, tuple[int, int] | None]:
    """What `data.read_history_span` returns for a database holding the recorded trades."""
    spans: dict[str, tuple[int, int] | None] = {}
    for trade in market_trades():
        symbol = trade.symbol.upper()
        first, last = spans.get(symbol) or (trade.ts, trade.ts)
        spans[symbol] = (min(first, trade.ts), max(last, trade.ts))
    return spans


def recorded_alerts(count: int) -> list[tuple[str, Alert]]:
    """Alerts as the worker fires them on the recorded bars' statistics, with entry ids."""
    stats = rolling_stats(recorded_bars("BTCUSDT"), recorded_bars("ETHUSDT"), 60)[:count]
    return [
        (f"{stat.ts}-0", Alert("z2", "BTCUSDT-ETHUSDT", "1s", "zscore", stat.zscore, 2.0, stat.ts))
        for stat in stats
    ]


def text(component: Any) -> str:
    return str(component.children) if isinstance(component, html.Div) else str(component)


def test_a_history_view_says_what_is_stored_and_all_means_all_of_it() -> None:
    spans = recorded_spans()
    first = min(span[0] for span in spans.values() if span)
    last = max(span[1] for span in spans.values() if span)
    choice = controller.choose_view(chosen(mode="history", preset="all"), spans, NOW)
    assert choice.span_text == f"Stored: {short_utc(first)} to {short_utc(last)} UTC"
    assert choice.view is not None and (choice.view.start_ms, choice.view.end_ms) == (
        first, last + 1
    )  # fmt: skip
    assert choice.error == "" and choice.live_view_id is None
    assert choice.store == choice.view.to_store()
    nothing = controller.choose_view(chosen(mode="history", preset="all"), {}, NOW)
    assert nothing.view is None and nothing.span_text == "No ticks stored yet."
    assert "no ticks are stored yet" in nothing.error


def test_a_live_view_is_registered_and_a_bad_one_keeps_the_last() -> None:
    choice = controller.choose_view(chosen(), None, NOW)
    assert choice.live_view_id == "BTCUSDT-ETHUSDT:1s:w60:ols"
    assert choice.span_text is None and choice.error == ""
    same = controller.choose_view(chosen(b="BTCUSDT"), None, NOW)
    assert same.view is None and same.store is None and same.live_view_id is None
    assert same.error == "A and B are both BTCUSDT: pick two different symbols"
    upload = controller.choose_view(chosen(mode="upload"), None, NOW)
    assert upload.error == "upload a CSV file first (below), then pick Upload"
    token = controller.choose_view(chosen(mode="upload", upload_token="t1"), None, NOW)
    assert token.view is not None and token.view.upload == "t1" and token.live_view_id is None


def test_the_live_view_to_renew_comes_from_the_store() -> None:
    assert controller.live_view_id(LIVE) == "BTCUSDT-ETHUSDT:1s:w60:ols"
    assert controller.live_view_id({**LIVE, "mode": "history"}) is None
    assert controller.live_view_id({**LIVE, "method": "nope"}) is None
    assert controller.live_view_id(None) is None


def test_pause_and_theme() -> None:
    assert controller.toggle_pause(None) == controller.Pause(True, "Resume")
    assert controller.toggle_pause(True) == controller.Pause(False, "Pause")
    assert controller.theme_class("light") == "app theme-light"
    assert controller.theme_class(None) == "app theme-dark"


def test_the_chart_renders_in_full_on_a_new_view_steps_on_ticks_and_says_paused() -> None:
    assert controller.plan_chart(None, False, ids.LIVE_TICK) == controller.ChartPlan(None)
    full = controller.plan_chart(LIVE, False, ids.VIEW)
    assert full.view is not None and full.full and full.view.key.startswith("live|")
    assert controller.plan_chart(LIVE, False, None).full
    assert controller.plan_chart(LIVE, False, ids.PAUSED).full
    step = controller.plan_chart(LIVE, False, ids.LIVE_TICK)
    assert step.view is not None and not step.full
    paused = controller.plan_chart(LIVE, True, ids.LIVE_TICK)
    assert paused.view is None and paused.status == status.PAUSED
    assert controller.plan_chart(LIVE, True, ids.VIEW).view is not None


def test_a_zoom_renders_in_full_unless_the_live_view_is_paused() -> None:
    assert controller.plan_chart(LIVE, False, ids.ZOOM).full
    assert controller.plan_chart(LIVE, True, ids.ZOOM).view is None
    history = {**LIVE, "mode": "history", "start_ms": NOW - 3_600_000, "end_ms": NOW}
    assert controller.plan_chart(history, True, ids.ZOOM).full


def test_zoom_is_remembered_for_its_view() -> None:
    key = controller.plan_chart(LIVE, False, ids.VIEW).view.key  # type: ignore[union-attr]
    zoomed = controller.zoom_change({"xaxis.range[0]": 1_000, "xaxis.range[1]": 2_000}, LIVE)
    assert zoomed == controller.ZoomChange({"key": key, "start": 1_000, "end": 2_000})
    assert controller.zoom_change({"xaxis.autorange": True}, LIVE) == controller.ZoomChange(None)
    assert controller.zoom_change({"dragmode": "pan"}, LIVE) is None


def test_the_first_alerts_fill_the_feed_newest_first() -> None:
    empty = controller.first_alerts([])
    assert empty.cursor == AlertsCursor(START, 0, 0) and empty.toast is None
    assert "No alert has fired yet." in str(empty.feed[0].children.children)
    recent = list(reversed(recorded_alerts(3)))
    shown = controller.first_alerts(recent)
    assert shown.cursor == AlertsCursor(recent[0][0], 3, 0)
    assert len(shown.feed) == 3


def test_new_alerts_replace_the_empty_row_then_go_on_top_and_old_rows_drop_off() -> None:
    fired = recorded_alerts(controller.FEED_ROWS + 5)
    assert controller.next_alerts(AlertsCursor(START, 0, 0), []) is None
    first = controller.next_alerts(AlertsCursor(START, 0, 0), fired[:2])
    assert first is not None and isinstance(first.feed, list) and len(first.feed) == 2
    assert first.cursor == AlertsCursor(fired[1][0], 2, 1)
    assert first.toast is not None and first.toast.key == "toast-1"
    more = controller.next_alerts(first.cursor, fired[2:])
    assert more is not None and isinstance(more.feed, Patch)
    operations = more.feed.to_plotly_json()["operations"]
    prepends = [op for op in operations if op["operation"] == "Prepend"]
    deletes = [op["location"] for op in operations if op["operation"] == "Delete"]
    assert len(prepends) == len(fired) - 2
    assert deletes == [[index] for index in range(len(fired) - 1, controller.FEED_ROWS - 1, -1)]
    assert more.cursor == AlertsCursor(fired[-1][0], controller.FEED_ROWS, 2)
    assert more.cursor == AlertsCursor.from_store(more.cursor.to_store())


def test_health_without_redis_leaves_events_and_the_view_alone() -> None:
    down = PipelineHealth(False, "Connection refused", ())
    shown = controller.health_view(down, None, LIVE)
    assert shown.redis_text == "Redis: down" and shown.events is None and shown.sample is None
    assert shown.live_view_id is None
    up = PipelineHealth(True, "", (ServiceHealth("writer", "ok", 100, {}, 5_000),), at_ms=NOW)
    shown = controller.health_view(up, None, LIVE)
    assert shown.live_view_id == "BTCUSDT-ETHUSDT:1s:w60:ols"
    assert shown.sample == {"at": NOW, "added": {}} and shown.events is not None


def test_adf_is_asked_for_the_live_view_only() -> None:
    assert controller.adf_target(None) == controller.AdfTarget(None, "no view chosen yet")
    history = {**LIVE, "mode": "history", "start_ms": 0, "end_ms": 60_000}
    assert "runs on the live view" in controller.adf_target(history).refusal
    assert controller.adf_target(LIVE) == controller.AdfTarget("BTCUSDT-ETHUSDT:1s:w60:ols")
    said = controller.adf_requested("BTCUSDT-ETHUSDT:1s:w60:ols", NOW)
    assert said.startswith("ADF requested at ") and "for BTCUSDT-ETHUSDT:1s:w60:ols" in said


def test_a_download_names_its_file_and_rows() -> None:
    file = controller.download(Export("x.csv", "time\n1\n2\n", 2))
    assert file.file == {"content": "time\n1\n2\n", "filename": "x.csv", "type": "text/csv"}
    assert file.status == "x.csv: 2 rows"


def data_url(text: str) -> str:
    return "data:text/csv;base64," + base64.b64encode(text.encode()).decode()


def test_an_upload_of_recorded_bars_is_read_and_said() -> None:
    bars = {symbol: recorded_bars(symbol, 60_000) for symbol in ("BTCUSDT", "ETHUSDT")}
    lines = ["time,symbol,open,high,low,close,volume"]
    for symbol, rows in bars.items():
        lines += [
            f"{b.start},{symbol},{b.open},{b.high},{b.low},{b.close},{b.volume}" for b in rows
        ]
    accepted = {"names": ["pair.csv"], "contents": [data_url("\n".join(lines))]}
    pair = controller.read_upload(accepted, 1.0)
    common = {b.start for b in bars["BTCUSDT"]} & {b.start for b in bars["ETHUSDT"]}
    assert pair.rows == len(common)
    said = text(controller.upload_loaded(pair))
    assert said.startswith(f"Loaded BTCUSDT/ETHUSDT: {len(common):,} aligned bars from pair.csv")
    with pytest.raises(UploadError, match="refused"):
        controller.read_upload(accepted, 0.0001)
