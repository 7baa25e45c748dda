"""Filling a new view's series from history at once, without stalling the live statistics.

A view that appears (a user picked other parameters, a rule watches it, or its stream is empty at
start) gets its last `VIEW_FILL_BARS` bars computed by the batch `pair_stats` on the timeframe's
closes, extended from SQLite when the view's window reaches further back than the worker keeps.
The work is done in slices of a few milliseconds between tick batches. Meanwhile the view is not
`ready` and the live path leaves it alone; when the fill is published, the bars that closed
during it are caught up and the view joins the live path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np

from services.analytics.engine import Analytics
from services.analytics.pairs import TimeframePairs, ViewState
from services.analytics.publisher import Outbox
from shared.bargrid import carried_closes
from shared.history import History
from shared.pairstats import MIN_BARS, Stationarity, adf_due, pair_stats
from shared.redis_io import Redis
from shared.schemas import PairStat
from shared.tickdb import TickDbError

log = logging.getLogger(__name__)

SLICE_S = 0.005
XADD_BATCH = 1_000
ROWS_PER_SLICE = {"ols": 2_000, "kalman": 20, "huber": 1}


async def extend_from_history(
    history: History | None, pairs: TimeframePairs, symbol: int, name: str, needed: int
) -> int:
    """Put older closes of `symbol` from SQLite in front of those held, up to `needed` in all."""
    matrix = pairs.matrix
    oldest = matrix.oldest_start(symbol)
    missing = needed - int(matrix.count[symbol])
    if history is None or oldest is None or missing <= 0:
        return 0
    first = oldest - missing * pairs.tf_ms
    try:
        bars = await asyncio.to_thread(history.bars, name, pairs.tf, first, oldest)
    except (TickDbError, OSError) as exc:
        log.debug("no history for a view fill", extra={"error": str(exc)})
        return 0
    oldest_now = matrix.oldest_start(symbol)
    if oldest_now != oldest:
        return 0
    return matrix.backfill(symbol, carried_closes(bars, first, oldest, pairs.tf_ms))


def _series(pairs: TimeframePairs, state: ViewState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    matrix = pairs.matrix
    n = min(int(matrix.count[state.a]), int(matrix.count[state.b]))
    last = matrix.last_start or 0
    ts = last - np.arange(n - 1, -1, -1, dtype=np.int64) * pairs.tf_ms
    return ts, matrix.row(state.a, n), matrix.row(state.b, n)


def _due_rows(ts: np.ndarray, pairs: TimeframePairs, phase: int) -> np.ndarray:
    return np.array(
        [adf_due(int(t), pairs.tf_ms, pairs.adf_every, phase) for t in ts.tolist()], dtype=bool
    )


async def compute_sliced(
    state: ViewState,
    pairs: TimeframePairs,
    ts: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    first: int,
) -> list[PairStat]:
    """`pair_stats` for rows `first..` in slices of about `SLICE_S`, yielding in between."""
    view = state.view
    due = _due_rows(ts, pairs, state.phase)
    rows = ROWS_PER_SLICE[view.method]
    out: list[PairStat] = []
    row = first
    while row < len(ts):
        started = time.perf_counter()
        while row < len(ts) and time.perf_counter() - started < SLICE_S:
            stop = min(row + rows, len(ts))
            out.extend(
                pair_stats(
                    ts, a, b, window=view.window, method=view.method,
                    kalman_delta=pairs.kalman_delta, adf_rows=due, start=row, stop=stop,
                )
            )  # fmt: skip
            row = stop
        await asyncio.sleep(0)
    return out


async def fill_view(
    redis: Redis,
    analytics: Analytics,
    history: History | None,
    state: ViewState,
    outbox: Outbox,
    fill_bars: int,
    on_ready: Callable[[ViewState, list[PairStat]], None],
) -> int:
    """Fill `state`'s stream from history and make it ready; the number of entries written."""
    pairs = analytics.pairs[state.view.tf]
    needed = state.view.window + fill_bars - 1
    pairs.matrix.grow(needed + 1)
    for symbol in (state.a, state.b):
        await extend_from_history(history, pairs, symbol, analytics.symbols[symbol], needed)
    ts, a, b = _series(pairs, state)
    first = max(0, len(ts) - fill_bars, MIN_BARS - 1)
    stats = await compute_sliced(state, pairs, ts, a, b, first) if len(ts) else []
    await redis.delete(state.stream_key, state.latest_key)
    for lo in range(0, len(stats), XADD_BATCH):
        pipe = redis.pipeline(transaction=False)
        for stat in stats[lo : lo + XADD_BATCH]:
            pipe.xadd(
                state.stream_key, stat.to_fields(), maxlen=analytics.settings.maxlen_analytics,
                approximate=True,
            )  # fmt: skip
        await pipe.execute()
    # From here to the end nothing awaits: the live path cannot slip an interval in between.
    snapshot_end = int(ts[-1]) if len(ts) else None
    latest_ts, now_a, now_b = _series(pairs, state)
    catch_up: list[PairStat] = []
    if len(latest_ts):
        begin = 0 if snapshot_end is None else int(np.searchsorted(latest_ts, snapshot_end + 1))
        due = _due_rows(latest_ts, pairs, state.phase)
        catch_up = pair_stats(
            latest_ts, now_a, now_b, window=state.view.window, method=state.view.method,
            kalman_delta=pairs.kalman_delta, adf_rows=due, start=begin,
        )  # fmt: skip
    for stat in catch_up:
        outbox.publish(state, stat, latest=False)
    everything = stats + catch_up
    if everything:
        newest = everything[-1]
        outbox.latest(state, newest)
        state.last = newest
        state.published_until = newest.ts
    else:
        state.published_until = pairs.matrix.last_start
    state.stationarity = Stationarity.newest(everything) or state.stationarity
    state.ready = True
    on_ready(state, everything)
    return len(everything)
