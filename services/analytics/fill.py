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
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import pandas as pd

from services.analytics.engine import Engine, due_rows
from services.analytics.outputs import FillDone, FillJob, HistoryRead, Step
from services.analytics.redis_wire import append_stats
from shared.history import History
from shared.pairstats import pair_stats
from shared.redis_io import UNAVAILABLE, Redis
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


class Filler:
    """Fills the views the engine asks for, one at a time, beside the live loop.

    A fill that Redis interrupts is queued again; one whose view is dropped meanwhile is
    cancelled and its keys deleted; one that fails otherwise leaves the view served live only.
    `write` is the worker's writer of a `Step`: the filled view's output goes out through it,
    before any later close of the live loop."""

    def __init__(
        self,
        redis: Redis,
        engine: Engine,
        history: History | None,
        maxlen: int,
        write: Callable[[Step], Awaitable[None]],
    ) -> None:
        self.redis, self.engine, self.history = redis, engine, history
        self.maxlen, self.write = maxlen, write
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.current: tuple[str, asyncio.Task[None]] | None = None

    def take(self, step: Step) -> None:
        """Queue the step's fills, and cancel the fill in progress if its view is dropped."""
        for view_id in step.fills:
            self.queue.put_nowait(view_id)
        if self.current is not None and self.current[0] in step.dropped:
            self.current[1].cancel()

    async def run(self) -> None:
        while True:
            view_id = await self.queue.get()
            state = self.engine.fill_wanted(view_id)
            if state is not None:
                await self._run_one(view_id, (state.stream_key, state.latest_key))

    async def _run_one(self, view_id: str, keys_of_view: Iterable[str]) -> None:
        task = asyncio.create_task(self._fill(view_id))
        self.current = (view_id, task)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            with contextlib.suppress(*UNAVAILABLE):
                await self.redis.delete(*keys_of_view)
        except UNAVAILABLE:
            await asyncio.sleep(0.5)
            self.queue.put_nowait(view_id)
        except Exception:
            log.exception("view fill failed; serving it live only", extra={"view": view_id})
            self.engine.fill_failed(view_id)
        finally:
            self.current = None

    async def _fill(self, view_id: str) -> None:
        done = await fill_view(self.redis, self.engine, self.history, view_id, self.maxlen)
        await self.write(done.step)
        log.info("view filled", extra={"view": view_id, "entries": done.entries})
