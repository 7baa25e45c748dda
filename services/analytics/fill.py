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

import pandas as pd

from services.analytics.engine import Engine, due_rows
from services.analytics.outputs import FillDone, FillJob, HistoryRead
from services.analytics.redis_wire import append_stats
from shared.history import History
from shared.pairstats import pair_stats
from shared.redis_io import Redis
from shared.schemas import PairStat
from shared.tickdb import TickDbError

log = logging.getLogger(__name__)

SLICE_S = 0.005
ROWS_PER_SLICE = {"ols": 2_000, "kalman": 20, "huber": 1}


async def read_history(history: History, read: HistoryRead) -> pd.DataFrame | None:
    """The bars of one leg that the fill wants from SQLite (None when it has none)."""
    try:
        return await asyncio.to_thread(history.bars, read.name, read.tf, read.first, read.oldest)
    except (TickDbError, OSError) as exc:
        log.debug("no history for a view fill", extra={"error": str(exc)})
        return None


async def compute_sliced(job: FillJob) -> list[PairStat]:
    """`pair_stats` for rows `first..` in slices of about `SLICE_S`, yielding in between."""
    view, ts = job.view, job.ts
    due = due_rows(ts, job.tf_ms, job.adf_every, job.phase)
    rows = ROWS_PER_SLICE[view.method]
    out: list[PairStat] = []
    row = job.first
    while row < len(ts):
        started = time.perf_counter()
        while row < len(ts) and time.perf_counter() - started < SLICE_S:
            stop = min(row + rows, len(ts))
            out.extend(
                pair_stats(
                    ts, job.a, job.b, window=view.window, method=view.method,
                    kalman_delta=job.kalman_delta, adf_rows=due, start=row, stop=stop,
                )
            )  # fmt: skip
            row = stop
        await asyncio.sleep(0)
    return out


async def fill_view(
    redis: Redis, engine: Engine, history: History | None, view_id: str, maxlen: int
) -> FillDone:
    """Fill a view's stream from history; what to write for it to go live."""
    for leg in (0, 1):
        read = engine.history_read(view_id, leg)
        if read is not None and history is not None:
            bars = await read_history(history, read)
            if bars is not None:
                engine.backfill(read, bars)
    job = engine.fill_job(view_id)
    assert job is not None, "a dropped view's fill is cancelled"
    stats = await compute_sliced(job) if len(job.ts) else []
    await redis.delete(job.stream_key, job.latest_key)
    await append_stats(redis, job.stream_key, stats, maxlen)
    # From here on nothing awaits: the live path cannot slip an interval in between.
    return engine.fill_done(job, stats)
