"""The analytics worker: ticks in through consumer group `analytics`, bars, statistics, alerts out.

The loop: read a batch of ticks (raw replies) from every symbol's stream and the requests stream,
give it to the engine (`engine.py`, which holds every decision), write what it returns
(`redis_wire.Outbox`). A close is written in two phases: first the bars and the fast statistics,
then the slow work and the alerts. Every `POLL_S` the worker reloads the views users asked for
and the alert rules, and refreshes its health record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.analytics.engine import Engine
from services.analytics.fill import Filler
from services.analytics.outputs import Problem, Step
from services.analytics.rebuild import rebuild, set_groups
from services.analytics.redis_wire import (
    Outbox,
    TickReader,
    group_backlog,
    raw_streams,
    read_sent_alerts,
    read_wanted,
)
from shared import keys
from shared.health import now_ms
from shared.history import History
from shared.redis_io import UNAVAILABLE
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)

CONSUMER = "worker"
COUNT = 1_000
"""Entries read per stream per XREADGROUP."""
BLOCK_MS = 50
POLL_S = 0.5
RECENT_ALERTS = 1_000


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


class Worker:
    def __init__(self, ctx: ServiceContext, history: History | None) -> None:
        self.ctx, self.redis, self.history = ctx, ctx.redis, history
        self.engine = Engine(ctx.settings)
        self.outbox = Outbox(ctx.settings)
        streams = [*self.engine.stream_index, keys.ANALYTICS_REQUESTS]
        self.reader = TickReader(
            ctx.settings.redis_url, keys.ANALYTICS_GROUP, CONSUMER, streams, COUNT, BLOCK_MS
        )
        self.filler = Filler(
            self.redis, self.engine, history, ctx.settings.maxlen_analytics, self.write
        )
        self.next_poll = 0.0
        self.reachable = True
        self.last_update = 0

    async def start(self) -> None:
        """Views and rules as stored, state rebuilt from history, consumer groups in place."""
        await self.write(self.engine.configure(await read_wanted(self.redis)))
        fill_bars = self.ctx.settings.view_fill_bars
        report = await rebuild(self.redis, self.engine, self.history, fill_bars)
        self.engine.restore_fired(await read_sent_alerts(self.redis, RECENT_ALERTS))
        await self.publish(self.engine.resume(report.event_ts, monotonic_ms()))
        await set_groups(self.redis, report.tails)
        self.ctx.health.set("rebuilt_history_bars", report.history_bars)
        self.ctx.health.set("rebuilt_stream_ticks", report.stream_ticks)
        log.info("state rebuilt", extra={"history_bars": report.history_bars,
                                         "stream_ticks": report.stream_ticks})  # fmt: skip

    async def write(self, step: Step) -> None:
        """Report the problems, count, queue the output and the fills, delete what goes."""
        for problem in step.problems:
            await self._report(problem)
        for name, amount in step.counts.items():
            self.ctx.health.incr(name, amount)
        self.outbox.write(step)
        self.filler.take(step)
        if step.deletes:
            await self.redis.delete(*step.deletes)

    async def _report(self, problem: Problem) -> None:
        log.warning(problem.text)
        self.ctx.health.incr(f"{problem.kind.replace('-', '_')}s")
        await self.ctx.event(problem.kind, problem.text)

    async def run(self) -> None:
        filler = asyncio.create_task(self.filler.run())
        try:
            while not self.ctx.stop.is_set():
                try:
                    await self._iterate()
                    if not self.reachable:
                        self.reachable, self.ctx.health.status = True, "ok"
                        log.warning("redis reachable again")
                except UNAVAILABLE as exc:
                    if self.reachable:
                        self.reachable, self.ctx.health.status = False, "degraded"
                        log.warning("redis not reachable, retrying", extra={"error": str(exc)})
                    self.ctx.health.incr("redis_errors")
                    self.outbox.trim()
                    await self.ctx.sleep(0.5)
        finally:
            filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await filler
            if self.outbox and self.reachable:
                with contextlib.suppress(*UNAVAILABLE):
                    await self.outbox.flush(self.redis)
            await self.reader.aclose()

    async def _iterate(self) -> None:
        if monotonic_ms() >= self.next_poll:
            await self.poll()
            self.next_poll = monotonic_ms() + POLL_S * 1000.0
        if self.outbox:
            await self.outbox.flush(self.redis)
        reply = await self.reader.read()
        wall = monotonic_ms()
        ingested = self.engine.ingest(raw_streams(reply), wall, COUNT)
        await self.write(ingested.step)
        for bad in ingested.bad:
            await self.ctx.dead_letter(bad.raw, bad.reason)
        step = self.engine.close(wall, ingested.held)
        if step is not None and step.closed:
            await self.publish(step)
        forming = self.engine.forming_due(wall)
        if forming.forming:
            await self.write(forming)

    async def publish(self, step: Step) -> None:
        """Write a close's fast part, send it, then its slow part and alerts, and send them.

        When Redis is away the output is kept for the next try and the worker carries on, so a
        close is always completed before the loop notices the outage."""
        await self.write(step)
        with contextlib.suppress(*UNAVAILABLE):
            await self.outbox.flush(self.redis)
        self.outbox.trim()
        done = self.engine.complete()
        await self.write(done)
        if done.counts.get("stats_published"):
            self.last_update = now_ms()
        with contextlib.suppress(*UNAVAILABLE):
            await self.outbox.flush(self.redis)
        self.outbox.trim()

    async def poll(self) -> None:
        step = self.engine.set_wanted(await read_wanted(self.redis))
        await self.write(step)
        for view_id in step.dropped:
            log.info("view dropped", extra={"view": view_id})
        for view_id in step.fills:
            log.info("view added", extra={"view": view_id})
        await self.refresh_health()

    async def refresh_health(self) -> None:
        health = self.ctx.health
        for name, value in self.engine.health(now_ms()).items():
            health.set(name, value)
        health.set("last_update", self.last_update)
        health.set("pending_output", len(self.outbox))
        backlog = await group_backlog(self.redis, list(self.engine.stream_index))
        health.set("backlog", backlog)


async def run(ctx: ServiceContext) -> None:
    """Rebuild the state, then serve until asked to stop."""
    history = History(ctx.settings.sqlite_path)
    worker = Worker(ctx, history)
    try:
        await worker.start()
        ctx.health.status = "ok"
        await worker.refresh_health()
        await worker.run()
    finally:
        history.close()
