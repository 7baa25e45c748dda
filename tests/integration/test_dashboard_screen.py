"""What the chart shows in each mode, on a real Redis and a real SQLite file."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest
import redis

from services.dashboard import actions, screen
from services.dashboard.selection import Selection
from services.dashboard.upload import UploadedFile, pair_from_files
from shared import keys, pairstats
from shared.config import Settings, load_settings
from shared.history import History
from shared.schemas import Alert
from shared.tickdb import INSERT_TRADES, open_for_writing
from shared.views import PairView
from testkit.recorded import market_trades
from tests.dashboard_support import seed_pair
from tests.figure_support import drawn

VIEW = PairView("BTCUSDT", "ETHUSDT", "1s", 60)


def live_view(**overrides: Any) -> Selection:
    values: dict[str, Any] = {"mode": "live", "a": "BTCUSDT", "b": "ETHUSDT", "tf": "1s",
                              "window": 60, "method": "ols", "k": 2.0}  # fmt: skip
    values.update(overrides)
    return Selection(**values)


@pytest.fixture
def settings(redis_url: str, sqlite_path: Path) -> Settings:
    return load_settings(redis_url=redis_url, sqlite_path=sqlite_path, dash_max_points=100)


def appended(step: dict[str, Any] | None) -> dict[tuple[int, str], list[Any]]:
    """(trace index, "x" / "y" / "text") -> what a live step appends."""
    assert step is not None, "a live step, not a full render"
    out: dict[tuple[int, str], list[Any]] = {}
    for part in (step["lines"], step["marks"]):
        for key in ("x", "y", "text"):
            if key in part:
                for index, values in zip(part["traces"], part[key], strict=True):
                    out[(index, key)] = values
    return out


def test_full_render_shows_the_newest_points_up_to_the_cap(
    sync_redis: redis.Redis, settings: Settings
) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60)
    shown = screen.render(sync_redis, settings, live_view(), None, full=True)
    lengths = [len(trace.x) for trace in drawn(shown.figure)]
    assert lengths == [100, 100, 100, 100, 100, 100, 100, 0, 100, 100, 100, 0, 0, 0]
    assert list(drawn(shown.figure)[0].x) == [bar.start for bar in seeded.bars_a[-100:]]
    assert shown.cursor is not None and shown.cursor["n"]["stats"] == 100
    assert "100 bars, 100 statistics on screen (cap 100)" in (shown.status or "")


def test_live_step_sends_only_new_points_and_nothing_when_nothing_is_new(
    sync_redis: redis.Redis, settings: Settings
) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60, bars=50)
    view = live_view()
    first = screen.render(sync_redis, settings, view, None, full=True)
    idle = screen.render(sync_redis, settings, view, first.cursor, full=False)
    assert (idle.figure, idle.step, idle.stats, idle.cursor) == (None, None, None, None)

    extra = seed_pair(sync_redis, VIEW, 60, bars=52)  # appends 52 more bars per leg
    step = screen.render(sync_redis, settings, view, first.cursor, full=False)
    assert step.figure is None
    assert appended(step.step)[(0, "x")] == [bar.start for bar in extra.bars_a]
    assert step.step is not None and step.step["base"] == first.cursor
    assert step.step["cursor"]["n"]["a"] == 102  # within the cap + headroom
    assert step.stats is not None  # a new latest hash
    assert len(seeded.bars_a) == 50


def test_alerts_of_this_pair_become_markers(sync_redis: redis.Redis, settings: Settings) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60, bars=30)
    view = live_view()
    first = screen.render(sync_redis, settings, view, None, full=True)
    mine = Alert("z2", "BTCUSDT-ETHUSDT", "1s", "zscore", 2.2, 2.0, seeded.stats[-1].ts, "up")
    other = Alert("z2", "BTCUSDT-ETHUSDT", "1m", "zscore", 2.2, 2.0, seeded.stats[-1].ts)
    for alert in (mine, other):
        sync_redis.xadd(keys.ALERTS, alert.to_fields())
    step = screen.render(sync_redis, settings, view, first.cursor, full=False)
    assert appended(step.step)[(7, "y")] == [2.2]
    assert step.step is not None and step.step["cursor"]["n"]["alerts"] == 1


def test_a_reset_stream_or_another_view_renders_in_full(
    sync_redis: redis.Redis, settings: Settings
) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=30)
    view = live_view()
    first = screen.render(sync_redis, settings, view, None, full=True)
    other = screen.render(sync_redis, settings, live_view(window=120), first.cursor, full=False)
    assert isinstance(other.figure, dict)  # a whole figure, not a patch
    sync_redis.flushdb()
    seed_pair(sync_redis, VIEW, 60, bars=10)
    sync_redis.xtrim(keys.bars("1s", "BTCUSDT"), maxlen=0)
    again = screen.render(sync_redis, settings, view, first.cursor, full=False)
    assert isinstance(again.figure, dict)


def test_a_view_the_worker_has_not_served_yet_says_so(
    sync_redis: redis.Redis, settings: Settings
) -> None:
    seed_pair(sync_redis, VIEW, 60, bars=30)
    shown = screen.render(sync_redis, settings, live_view(window=120), None, full=True)
    notes = {a.text for a in go.Figure(shown.figure).layout.annotations}
    assert any("Waiting for the analytics worker to serve BTCUSDT-ETHUSDT 1s, window 120" in n
               for n in notes)  # fmt: skip
    assert len(drawn(shown.figure)[0].x) == 30  # prices still shown
    empty = screen.render(sync_redis, settings, live_view(a="SOLUSDT"), None, full=True)
    notes = {a.text for a in go.Figure(empty.figure).layout.annotations}
    assert "Waiting for the first 1s bars of SOLUSDT" in notes


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_has_exactly_the_points_on_screen_or_the_zoomed_range(
    sync_redis: redis.Redis, settings: Settings
) -> None:
    seeded = seed_pair(sync_redis, VIEW, 60)
    view = live_view()
    shown = screen.render(sync_redis, settings, view, None, full=True)
    seed_pair(sync_redis, VIEW, 60, bars=3)  # arrives after the screen was drawn
    name, text, count = screen.export_csv(sync_redis, settings, view, shown.cursor, None)
    rows = read_csv(text)
    expected = sorted({bar.start for bar in seeded.bars_a[-100:]} | {bar.start for bar in
                      seeded.bars_b[-100:]} | {s.ts for s in seeded.stats[-100:]})  # fmt: skip
    assert count == len(rows) == len(expected)
    assert rows[-1]["BTCUSDT_close"] == repr(seeded.bars_a[-1].close)
    assert rows[-1]["zscore"] == repr(seeded.stats[-1].zscore)
    assert name.startswith("BTCUSDT-ETHUSDT_1s_")
    start, end = seeded.bars_a[-10].start, seeded.bars_a[-6].start
    zoom = {"key": view.key, "start": start, "end": end}
    _, text, count = screen.export_csv(sync_redis, settings, view, shown.cursor, zoom)
    assert count == 5 and read_csv(text)[0]["time"].endswith("Z")
    stale_zoom = {"key": "another view", "start": start, "end": end}
    assert screen.export_csv(sync_redis, settings, view, shown.cursor, stale_zoom)[2] == len(
        expected
    )


def write_ticks(path: Path) -> None:
    conn = open_for_writing(path)
    rows = [(t.symbol.upper(), i, t.ts, t.price, t.size, "buy", t.ts)
            for i, t in enumerate(market_trades())]  # fmt: skip
    conn.execute("BEGIN")
    conn.executemany(INSERT_TRADES, rows)
    conn.execute("COMMIT")
    conn.close()


def test_history_range_reads_sqlite_bars_of_any_timeframe(
    sync_redis: redis.Redis, settings: Settings, sqlite_path: Path
) -> None:
    write_ticks(sqlite_path)
    span = History(sqlite_path).span("BTCUSDT")
    assert span is not None
    view = live_view(mode="history", tf="1m", start_ms=span[0], end_ms=span[1] + 1)
    shown = screen.render(sync_redis, settings, view, None, full=True)
    expected = History(sqlite_path).bars("BTCUSDT", "1m", span[0], span[1] + 1)
    assert list(drawn(shown.figure)[0].x) == expected["start"].tolist()
    assert list(drawn(shown.figure)[0].y) == expected["close"].tolist()
    _, text, _ = screen.export_csv(sync_redis, settings, view, shown.cursor, None)
    exported = read_csv(text)
    assert [float(r["BTCUSDT_volume"]) for r in exported if r["BTCUSDT_volume"]] == pytest.approx(
        expected["volume"].tolist()
    )
    assert shown.status is not None and shown.status.startswith("History")
    # The statistics are shared/pairstats' on both legs' closes on the worker's grid: a bar for
    # every minute, closes carried over minutes without trades.
    other = History(sqlite_path).bars("ETHUSDT", "1m", span[0] - 60 * 60_000, span[1] + 1)
    a = expected.set_index("start")["close"]
    b = other.set_index("start")["close"]
    joined = pd.concat([a, b], axis=1).sort_index()
    grid = range(int(joined.index[0]), int(joined.index[-1]) + 60_000, 60_000)
    aligned = joined.reindex(grid).ffill().dropna()
    reference = pairstats.pair_stats(aligned.index.to_numpy(), aligned.iloc[:, 0].to_numpy(),
                                     aligned.iloc[:, 1].to_numpy(), window=60)  # fmt: skip
    z = drawn(shown.figure)[6]
    assert list(z.x) == [s.ts for s in reference]
    assert list(z.y) == pytest.approx([s.zscore for s in reference], nan_ok=True)


def test_history_says_what_is_wrong_instead_of_going_blank(
    sync_redis: redis.Redis, settings: Settings, sqlite_path: Path
) -> None:
    view = live_view(mode="history", start_ms=0, end_ms=60_000)
    shown = screen.render(sync_redis, settings, view, None, full=True)
    notes = {a.text for a in go.Figure(shown.figure).layout.annotations}
    assert any("no tick database" in n for n in notes)
    write_ticks(sqlite_path)
    shown = screen.render(sync_redis, settings, view, None, full=True)
    assert any("No 1s bars" in a.text for a in go.Figure(shown.figure).layout.annotations)
    huge = live_view(mode="history", start_ms=0, end_ms=10**12)
    shown = screen.render(sync_redis, settings, huge, None, full=True)
    assert any("pick a shorter range or a larger timeframe" in a.text
               for a in go.Figure(shown.figure).layout.annotations)  # fmt: skip


def test_an_upload_is_kept_in_redis_and_drawn(sync_redis: redis.Redis, settings: Settings) -> None:
    lines = ["time,symbol,open,high,low,close,volume"]
    for i in range(30):
        lines.append(f"{1_765_892_460 + 60 * i},AAAUSDT,10,13,9,{10 + i % 3},1")
        lines.append(f"{1_765_892_460 + 60 * i},BBBUSDT,20,25,19,{20 + i % 5},2")
    pair = pair_from_files([UploadedFile("x.csv", "\n".join(lines).encode())])
    token = actions.store_upload(sync_redis, pair)
    assert 0 < sync_redis.ttl(keys.dashboard_upload(token)) <= keys.UPLOAD_TTL_S
    view = live_view(mode="upload", upload=token)
    shown = screen.render(sync_redis, settings, view, None, full=True)
    assert drawn(shown.figure)[0].name == "AAAUSDT" and len(drawn(shown.figure)[0].x) == 30
    _, text, count = screen.export_csv(sync_redis, settings, view, shown.cursor, None)
    assert count == 30 and "AAAUSDT_vwap" not in text.splitlines()[0]
    reference = pairstats.pair_stats(pair.a.time, pair.a.close, pair.b.close, window=60,
                                     method="ols")  # fmt: skip
    exported = read_csv(text)
    assert [r["beta"] for r in exported[2:]] == [repr(s.beta) for s in reference]
    sync_redis.delete(keys.dashboard_upload(token))
    gone = screen.render(sync_redis, settings, view, None, full=True)
    assert any("upload has expired" in a.text for a in go.Figure(gone.figure).layout.annotations)
