"""The chart cursor: when a live step can be appended to the screen, and what it sends, on the
recorded bars (no Redis: the snapshots are what `data.read_since` returns)."""

from __future__ import annotations

from dataclasses import replace

from services.dashboard import display
from services.dashboard.cursor import LIVE_BATCH, ChartCursor, continues, latest_digest
from services.dashboard.records import START, Snapshot
from services.dashboard.selection import Selection
from shared.config import load_settings
from shared.schemas import Bar
from tests.dashboard_support import recorded_bars, rolling_stats

VIEW = Selection("live", "BTCUSDT", "ETHUSDT", "1s", 60, "ols", 2.0)
SETTINGS = load_settings(dash_max_points=100)
SCREEN, CAP = SETTINGS.dash_screen_points, SETTINGS.dash_max_points


def entries(bars: list[Bar]) -> list[tuple[str, Bar]]:
    return [(f"{bar.start}-0", bar) for bar in bars]


def bars(symbol: str, count: int, offset: int) -> list[Bar]:
    """`count` of the recorded 1s bars from `offset` on, the recording repeated after its end
    (each round shifted by its length) when more are asked for than it has."""
    recorded = recorded_bars(symbol)
    span = recorded[-1].start - recorded[0].start + 1_000
    out = []
    for i in range(offset, offset + count):
        bar = recorded[i % len(recorded)]
        out.append(replace(bar, start=bar.start + i // len(recorded) * span))
    return out


def snapshot(count: int, offset: int = 0, seen: dict[str, str] | None = None) -> Snapshot:
    """The entries `[offset, offset + count)` of the streams, as read after the ids `seen`."""
    bars_a, bars_b = bars("BTCUSDT", count, offset), bars("ETHUSDT", count, offset)
    before_a, before_b = bars("BTCUSDT", offset, 0), bars("ETHUSDT", offset, 0)
    stats = rolling_stats(before_a + bars_a, before_b + bars_b, 60)
    stats = [stat for stat in stats if stat.ts >= min(bars_a[0].start, bars_b[0].start)]
    snap = Snapshot(entries(bars_a), entries(bars_b), [(f"{s.ts}-0", s) for s in stats])
    snap.latest = stats[-1].to_fields() if stats else {}
    snap.tails = snap.newest_ids(seen or {role: START for role in ("a", "b", "stats", "alerts")})
    return snap


def test_a_full_render_hands_the_browser_a_cursor_it_can_continue() -> None:
    first = snapshot(30)
    shown = display.live_full(SETTINGS, VIEW, first)
    held = ChartCursor.of_view(shown.cursor, VIEW.key)
    assert held is not None and held.n == {"a": 30, "b": 30, "stats": len(first.stats), "alerts": 0}
    assert held.ids == first.tails
    assert held.latest == latest_digest(snapshot(30).latest)
    assert ChartCursor.of_view(shown.cursor, "another view") is None
    assert ChartCursor.of_view(None, VIEW.key) is None

    new = snapshot(2, 30, held.ids)
    assert continues(held, new, SCREEN, CAP)
    step = display.live_step(SETTINGS, VIEW, held, new)
    assert step.step is not None and step.cursor is None, "the page moves its cursor on"
    following = step.step["cursor"]
    assert following["n"]["a"] == 32 and following["render"] == held.render
    assert following["ids"]["a"] == new.bars_a[-1][0] and step.stats is not None
    assert following["points"] == 32 and step.figure is None
    assert step.step["lines"]["x"][0] == [b.start for _, b in new.bars_a]
    assert shown.figure is not None
    assert step.step["base"] == shown.figure["layout"]["meta"]["cursor"], "the figure it extends"


def test_each_full_render_carries_its_own_cursor_and_an_idle_step_sends_nothing() -> None:
    first = snapshot(30)
    shown = display.live_full(SETTINGS, VIEW, first, render="r1")
    assert shown.figure is not None and shown.cursor is not None
    assert shown.figure["layout"]["meta"]["cursor"] == shown.cursor
    assert shown.cursor["render"] == "r1"
    assert "forming" in shown.figure["layout"]["meta"], "the segments' map is kept"
    held = ChartCursor.of_view(shown.cursor, VIEW.key)
    assert held is not None and held.render == "r1"
    nothing_new = Snapshot(latest=first.latest, tails=dict(held.ids))
    idle = display.live_step(SETTINGS, VIEW, held, nothing_new)
    assert (idle.figure, idle.step, idle.cursor, idle.stats) == (None, None, None, None)


def test_a_reset_stream_a_first_row_or_a_flood_renders_in_full() -> None:
    held = ChartCursor.of_view(display.live_full(SETTINGS, VIEW, snapshot(30)).cursor, VIEW.key)
    assert held is not None
    reset = snapshot(2, 30, held.ids)
    reset.tails["a"] = "1-0"
    assert not continues(held, reset, SCREEN, CAP)
    no_stats = ChartCursor(held.key, held.ids, {**held.n, "stats": 0}, held.adf, held.latest)
    assert not continues(no_stats, snapshot(5, 30, held.ids), SCREEN, CAP)
    roomy = 10_000  # a flood, not the cap
    assert not continues(held, snapshot(LIVE_BATCH, 30, held.ids), SCREEN, roomy)
    assert continues(held, snapshot(LIVE_BATCH - 1, 30, held.ids), SCREEN, roomy)


def test_a_page_whose_traces_are_full_is_reduced_again_by_a_full_render() -> None:
    """The page holds at most `DASH_SCREEN_POINTS` points a trace and covers at most
    `DASH_MAX_POINTS` entries and a tenth of the screen: past either, a full render."""
    settings = load_settings(dash_max_points=1_000, dash_screen_points=200)
    shown = display.live_full(settings, VIEW, snapshot(1_000))
    held = ChartCursor.of_view(shown.cursor, VIEW.key)
    assert held is not None and held.points == 180, "reduced to the screen less a tenth"
    assert held.n["a"] == 1_000
    assert continues(held, snapshot(20, 1_000, held.ids), 200, 1_000)
    assert not continues(held, snapshot(21, 1_000, held.ids), 200, 1_000)
    few = display.live_full(settings, VIEW, snapshot(100))
    small = ChartCursor.of_view(few.cursor, VIEW.key)
    assert small is not None and small.points == 100
    assert continues(small, snapshot(100, 100, small.ids), 200, 1_000)
    assert not continues(small, snapshot(101, 100, small.ids), 200, 1_000)
    covered = replace(small, n={**small.n, "a": 1_000}, points=10)
    assert not continues(covered, snapshot(21, 100, small.ids), 200, 1_000)
