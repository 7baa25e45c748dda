"""The live feed end to end, on the real services: Binance's routed endpoints with the default
settings, gaps back-filled from REST until SQLite equals the exchange's truth, a writer killed
three times and taken over in seconds, and bars that wait for a lagging symbol.

The feed process serves Binance's routed WebSocket layout and its REST endpoints from one
exchange, and keeps every trade it made: SQLite is compared with it trade id by trade id and,
per second, by summed quantity.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared import keys
from shared.history import History
from testkit.pipeline import Pipeline, expand
from testkit.polling import wait_until

DEFAULTS = {
    "BINANCE_STALE_TIMEOUT_S": "30",
    "BINANCE_RECONNECT_BASE_S": "1",
    "BINANCE_RECONNECT_MAX_S": "30",
}
"""The route and connection settings at their defaults (the harness shortens them otherwise)."""


def settle(pipe: Pipeline) -> None:
    assert pipe.feed is not None
    pipe.feed.set_rate(0)
    assert wait_until(pipe.backfill_done, 90), pipe.log_tails(["ingestor"])
    assert wait_until(pipe.writer_drained, 30), pipe.log_tails(["writer"])


def truth_between(
    truth: dict[str, Any], first: int, last: int
) -> tuple[set[int], dict[int, Decimal]]:
    """The exchange's trade ids from `first` to `last`, and their quantity summed per second."""
    base = truth["first_id"]
    volume: dict[int, Decimal] = {}
    for trade_id in range(first, last + 1):
        second = truth["times"][trade_id - base] // 1000 * 1000
        volume[second] = volume.get(second, Decimal(0)) + Decimal(truth["qtys"][trade_id - base])
    return set(range(first, last + 1)), volume


def assert_sqlite_equals_truth(pipe: Pipeline) -> dict[str, int]:
    """Between the first and last trade stored, every id of the exchange is covered by exactly
    one row, and every second's summed quantity equals the exchange's; rows per symbol."""
    assert pipe.feed is not None
    truth = pipe.feed.truth()
    rows = {}
    for symbol in pipe.symbols:
        stored = pipe.sqlite_ranges(symbol)
        assert stored, f"{symbol}: nothing stored"
        covered = [i for first, last, _, _ in stored for i in range(first, last + 1)]
        assert len(covered) == len(set(covered)), f"{symbol}: an id covered twice"
        ids, volume = truth_between(truth[symbol], stored[0][0], stored[-1][1])
        missing = ids - set(covered)
        assert not missing, (
            f"{symbol}: {len(missing)} trade ids missing, e.g. {sorted(missing)[:5]}"
        )
        mine: dict[int, Decimal] = {}
        for _, _, ts, size in stored:
            second = ts // 1000 * 1000
            mine[second] = mine.get(second, Decimal(0)) + Decimal(size)
        assert mine == volume, f"{symbol}: per-second volume differs from the exchange's"
        rows[symbol] = len(stored)
    return rows


def test_routed_endpoints_with_default_settings_first_tick_in_seconds_every_trade_once(
    tmp_path: Path,
) -> None:
    with Pipeline(tmp_path, env=DEFAULTS, services=("writer", "analytics")) as pipe:
        assert pipe.feed is not None
        pipe.wait_healthy(within=30)
        pipe.feed.set_rate(500)
        started = time.monotonic()
        pipe.start("ingestor")
        assert wait_until(lambda: any(pipe.stream_ids(s) for s in pipe.symbols), 10, 0.02)
        first_tick_s = time.monotonic() - started
        time.sleep(4)
        settle(pipe)
        delivered = pipe.feed.delivered_ids()
        for symbol in pipe.symbols:
            stored = pipe.sqlite_ids(symbol)
            assert len(stored) == len(set(stored)) == len(delivered[symbol]) > 500
            assert set(stored) == delivered[symbol]
        assert_sqlite_equals_truth(pipe)
        routes = {pipe.health("ingestor").get(f"route:{s}") for s in pipe.symbols}
        assert pipe.events("route_silent") == [] and pipe.events("gap") == []
    print(f"first tick {first_tick_s:.2f} s after the ingestor started")
    assert first_tick_s < 5
    assert routes == {"/public"}


@pytest.mark.parametrize("api_key", ["pipelineKey1", ""], ids=["historicalTrades", "aggTrades"])
def test_dropped_connections_are_backfilled_until_sqlite_equals_the_truth(
    tmp_path: Path, api_key: str
) -> None:
    with Pipeline(tmp_path, env={"BINANCE_API_KEY": api_key}) as pipe:
        assert pipe.feed is not None
        pipe.wait_healthy(within=30)
        pipe.feed.set_rate(2_000)
        time.sleep(2)
        for _ in range(3):
            pipe.feed.drop()
            time.sleep(2)
        settle(pipe)
        delivered = pipe.feed.delivered_ids()
        gaps = {s: expand(pipe.gap_ranges(s)) for s in pipe.symbols}
        assert all(gaps.values()), "the drops left no gap: nothing was back-filled"
        rows = assert_sqlite_equals_truth(pipe)
        sources = {f["source"] for s in pipe.symbols for f in pipe._entries(keys.backfill(s))}
        assert len(pipe.events("backfilled")) >= 2
        assert pipe.events("backfill_failed") == []
        missed = {s: len(gaps[s] - delivered[s]) for s in pipe.symbols}
    assert sources == {"rest" if api_key else "rest-agg"}
    print(f"rows {rows}; ids missed on the socket and back-filled {missed}")


@contextmanager
def sqlite_write_lock(path: Path) -> Iterator[None]:
    """Hold SQLite's write lock for the block: every writer's commit waits, then fails."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def writer_pending(pipe: Pipeline) -> int:
    """Entries read by a consumer of group `writer` and not acknowledged."""
    with pipe.client() as client:
        return sum(
            int(client.xpending(keys.ticks(s), keys.WRITER_GROUP)["pending"]) for s in pipe.symbols
        )


def test_a_writer_killed_three_times_has_every_tick_in_sqlite_within_5_s_of_the_restart(
    tmp_path: Path,
) -> None:
    """Idle-based claiming at its default (30 s) would leave the killed writers' pending
    entries stranded for half a minute; the liveness keys make the takeover immediate."""
    env = {
        "WRITER_CLAIM_IDLE_MS": "30000",
        "WRITER_CLAIM_INTERVAL_S": "5",
        "HEALTH_INTERVAL_S": "1",
    }
    with Pipeline(tmp_path, env=env) as pipe:
        assert pipe.feed is not None
        pipe.wait_healthy(within=30)
        pipe.feed.set_rate(2_000)
        time.sleep(2)
        for _ in range(3):
            # Killed while it holds entries it has read and not stored (SQLite is locked), so
            # each dead writer leaves pending entries behind for the next one to take over.
            with sqlite_write_lock(pipe.sqlite_path):
                assert wait_until(lambda: writer_pending(pipe) > 0, 10)
                pipe.kill("writer", signal.SIGKILL)
            pipe.start("writer")
            time.sleep(1)
        restarted = time.monotonic()
        wanted = {s: set(pipe.stream_ids(s)) for s in pipe.symbols}

        def stored_all() -> bool:
            return all(wanted[s] <= set(pipe.sqlite_ids(s)) for s in pipe.symbols)

        assert wait_until(stored_all, 30, 0.05), pipe.log_tails(["writer"])
        took_s = time.monotonic() - restarted

        def taken_over_count() -> int:
            return int(pipe.health("writer").get("taken_over", 0))

        # The record is published once a heartbeat: it may not show the takeover yet.
        wait_until(lambda: taken_over_count() > 0, 5)
        taken_over = taken_over_count()
        settle(pipe)
        for symbol in pipe.symbols:
            stored = pipe.sqlite_ids(symbol)
            assert len(stored) == len(set(stored)) and set(stored) == set(pipe.stream_ids(symbol))
    print(f"every tick in SQLite {took_s:.2f} s after the last restart; taken over {taken_over}")
    assert took_s < 5
    assert taken_over > 0


def test_bars_wait_for_a_lagging_symbol_no_trade_late_and_equal_to_the_stored_ticks(
    tmp_path: Path,
) -> None:
    """BTCUSDT's trades held 1.5 s, then sent at once, twice: under the old clock, ETHUSDT
    closed the bars meanwhile and BTCUSDT's trades were all late. (The stale timeout is above
    the lag, so the ingestor does not take the lagging connection for a stuck one.)"""
    env = {"BAR_LATENESS_MS": "300", "BINANCE_STALE_TIMEOUT_S": "5"}
    with Pipeline(tmp_path, env=env) as pipe:
        assert pipe.feed is not None
        pipe.wait_healthy(within=30)
        pipe.feed.set_rate(1_000)
        time.sleep(3)
        for _ in range(2):
            pipe.feed.lag("BTCUSDT", 1.5)
            time.sleep(3)
        settle(pipe)
        time.sleep(1.5)
        late = int(pipe.health("analytics").get("late_ticks", -1))
        history = History(pipe.sqlite_path)
        compared = 0
        for symbol in pipe.symbols:
            published = [f for f in pipe._entries(keys.bars("1s", symbol)) if int(f["trades"]) > 0]
            assert len(published) > 8
            first, last = int(published[0]["start"]), int(published[-1]["start"])
            batch = history.bars(symbol, "1s", first, last + 1000)
            assert list(batch["start"]) == [int(f["start"]) for f in published]
            assert list(batch["trades"]) == [int(f["trades"]) for f in published]
            for column in ("open", "high", "low", "close", "volume"):
                np.testing.assert_allclose(
                    batch[column], [float(f[column]) for f in published], rtol=1e-9
                )
            compared += len(published)
        history.close()
        assert pipe.events("gap") == []
    assert late == 0
    print(f"{compared} published 1s bars equal the batch resampling; late ticks {late}")
