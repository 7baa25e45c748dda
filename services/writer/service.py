"""The writer's loop: read a batch, dead-letter what cannot be stored, commit the rows, then XACK.

An entry is acknowledged only after the transaction holding its row has committed, so a crash at
any moment leaves it pending in Redis: a restarted writer re-reads its own pending entries first,
and every writer takes over entries that a crashed one left pending (XAUTOCLAIM). `INSERT OR
IGNORE` on `(symbol, trade_id)` makes these redeliveries harmless: rows equal unique ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time

from redis.exceptions import ResponseError

from services.writer.consumer import TRIMMED, Batch, Reject, TickStreams
from services.writer.store import StoreBusy, TickStore
from shared.config import Settings
from shared.events import store_dead_letters
from shared.health import LAG_ENTRIES, LAST_ERROR, now_ms
from shared.market import market_kind
from shared.redis_io import UNAVAILABLE
from shared.runtime import EXIT_CONFIG, ServiceContext, ServiceFailed
from shared.tickdb import TickDbError

log = logging.getLogger(__name__)

BLOCK_MS = 1_000
"""Longest XREADGROUP wait, so a stop request or a due claim is noticed within a second (and
well inside `shared.redis_io.SOCKET_TIMEOUT_S`, the longest any reply is awaited)."""
GATHER_S = 0.02
"""While a batch fills, entries are left to gather this long between reads: one read per
publish of the ingestor (every few ms) costs the writer a quarter of a core at 2,000 ticks/s."""
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 5.0
LIVENESS_HEARTBEATS = 3
"""A writer's liveness key lives this many heartbeats (`HEALTH_INTERVAL_S`, at least one second
in all) unless renewed: once it is gone, another writer takes its pending entries over."""
COUNTERS = (
    "rows_written", "duplicates", "entries", "batches", "deadlettered", "lost", "claimed",
    "taken_over", "recovered", "retries", LAG_ENTRIES, "lag_ms", "commit_lag_ms", "last_commit",
)  # fmt: skip


class StoreUnavailable(ServiceFailed):
    """The tick database cannot be opened or created (path, permissions, newer schema)."""


def consumer_name(settings: Settings) -> str:
    """`WRITER_CONSUMER`, else `<hostname>-<pid>`: unique per process, and stable across the
    restarts of a container (same hostname, same pid), which then re-reads its own pending."""
    return settings.writer_consumer or f"{socket.gethostname()}-{os.getpid()}"


class Writer:
    """One consumer of group `writer`, persisting into one tick database."""

    def __init__(self, ctx: ServiceContext, store: TickStore, streams: TickStreams) -> None:
        self.ctx = ctx
        self.store = store
        self.streams = streams
        settings = ctx.settings
        self.batch_size = settings.writer_batch_size
        self.batch_delay_s = settings.writer_batch_delay_ms / 1000
        self.claim_idle_ms = settings.writer_claim_idle_ms
        self.claim_interval_s = settings.writer_claim_interval_s
        self.heartbeat_s = settings.health_interval_s
        self.liveness_ttl_ms = max(1_000, int(LIVENESS_HEARTBEATS * self.heartbeat_s * 1000))
        self.health = ctx.health
        for name in COUNTERS:
            self.health.set(name, 0)
        self.health.set("consumer", streams.consumer)
        self.health.set(LAST_ERROR, "")

    async def run(self) -> None:
        """Until stopped: finish own pending entries, then read, commit and ack in batches."""
        reporting = asyncio.create_task(self._report_lag())
        living = asyncio.create_task(self._keep_alive())
        try:
            await self._loop()
        finally:
            for task in (reporting, living):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(*UNAVAILABLE, ResponseError):
                await self.streams.retire()

    async def _keep_alive(self) -> None:
        """Renew the liveness key every heartbeat, so other writers know this one is alive."""
        while True:
            with contextlib.suppress(*UNAVAILABLE, ResponseError):
                await self.streams.keep_alive(self.liveness_ttl_ms)
            await asyncio.sleep(self.heartbeat_s)

    async def _loop(self) -> None:
        recovering, claim_due, takeover_due, backoff = True, 0.0, 0.0, RETRY_FIRST_S
        # The previous batch commits (in a worker thread) and is acked while the next is read.
        flushing: asyncio.Task[bool] | None = None
        try:
            while not self.ctx.stop.is_set():
                try:
                    if recovering:
                        created = await self.streams.ensure_groups()
                        if created:
                            log.info("consumer group created", extra={"streams": ",".join(created)})
                        await self._finish_own_pending()
                        recovering = False
                        self._ok()
                        continue
                    if time.monotonic() >= takeover_due:
                        dead = await self.streams.dead_owners()
                        if dead:
                            await _settled(flushing)
                            flushing = None
                            await self._take_over(dead)
                        takeover_due = time.monotonic() + self.heartbeat_s
                    if time.monotonic() >= claim_due:
                        await _settled(flushing)
                        flushing = None
                        await self._claim_abandoned()
                        claim_due = time.monotonic() + self.claim_interval_s
                    batch = await self._collect()
                    await _settled(flushing)
                    flushing = None
                    if len(batch):
                        flushing = asyncio.create_task(self._flush(batch))
                    self._ok()
                    backoff = RETRY_FIRST_S
                except (*UNAVAILABLE, ResponseError) as exc:
                    if isinstance(exc, ResponseError) and not _recoverable(exc):
                        raise
                    if flushing is not None:
                        with contextlib.suppress(*UNAVAILABLE, ResponseError):
                            await flushing
                        flushing = None
                    self._degraded(f"redis: {exc}")
                    log.warning("redis unavailable, retrying", extra={"error": str(exc)})
                    recovering = True
                    await self.ctx.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
        except asyncio.CancelledError:
            if flushing is not None:
                flushing.cancel()
            raise
        finally:
            await _last_flush(flushing)

    async def _finish_own_pending(self) -> None:
        """Re-read this consumer's unacknowledged entries (left by a crash) and store them."""
        while not self.ctx.stop.is_set():
            batch = await self.streams.read(pending=True, count=self.batch_size, block_ms=None)
            if not len(batch) or not await self._flush(batch):
                return
            self.health.incr("recovered", len(batch))
            log.info("own pending entries stored", extra={"entries": len(batch)})

    async def _take_over(self, dead: dict[str, list[str]]) -> None:
        """Store at once the pending entries of writers whose liveness key is gone (killed
        with `kill -9`, say): they are not waited for until `WRITER_CLAIM_IDLE_MS`."""
        for stream, owners in dead.items():
            for owner in owners:
                while not self.ctx.stop.is_set():
                    batch, deleted = await self.streams.take_over(stream, owner, self.batch_size)
                    if deleted:
                        await self._dead_letter([Reject(stream, i, None, TRIMMED) for i in deleted])
                        self.health.incr("lost", len(deleted))
                    if not len(batch) and not deleted:
                        break
                    if len(batch):
                        if not await self._flush(batch):
                            return
                        self.health.incr("taken_over", len(batch))
                        log.info(
                            "took over a dead writer's pending entries",
                            extra={"owner": owner, "stream": stream, "entries": len(batch)},
                        )

    async def _claim_abandoned(self) -> None:
        """Take over entries other consumers left pending longer than `WRITER_CLAIM_IDLE_MS`."""
        for stream in self.streams.symbol_of:
            cursor = "0-0"
            while not self.ctx.stop.is_set():
                batch, cursor, deleted = await self.streams.claim(
                    stream, self.claim_idle_ms, cursor, self.batch_size
                )
                if deleted:
                    # Already dropped from the pending list by Redis: nothing to ack.
                    await self._dead_letter([Reject(stream, i, None, TRIMMED) for i in deleted])
                    self.health.incr("lost", len(deleted))
                if len(batch):
                    log.info("claimed abandoned entries", extra={"entries": len(batch)})
                    self.health.incr("claimed", len(batch))
                    if not await self._flush(batch):
                        return
                if cursor in ("0-0", "0"):
                    break
        removed = await self.streams.forget_idle_consumers(self.claim_idle_ms)
        if removed:
            log.info("idle consumers removed", extra={"consumers": ",".join(sorted(removed))})

    async def _collect(self) -> Batch:
        """Read new entries until the batch is full or `WRITER_BATCH_DELAY_MS` has passed since
        its first entry arrived; after the first, every `GATHER_S` what has come meanwhile."""
        batch = await self.streams.read(pending=False, count=self.batch_size, block_ms=BLOCK_MS)
        deadline = time.monotonic() + self.batch_delay_s
        while len(batch) and len(batch) < self.batch_size and not self.ctx.stop.is_set():
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            await asyncio.sleep(min(remaining_s, GATHER_S))
            more = await self.streams.read(
                pending=False, count=self.batch_size - len(batch), block_ms=None
            )
            batch.merge(more)
        return batch

    async def _flush(self, batch: Batch) -> bool:
        """Dead-letter the rejects, commit the rows, then ack everything; False when stopped
        while SQLite was refusing (the entries stay pending for the next start)."""
        if batch.rejects:
            await self._dead_letter(batch.rejects)
        inserted = 0
        if batch.rows:
            committed = await self._commit(batch)
            if committed is None:
                return False
            inserted = committed
        await self.streams.ack(batch.ids)
        entries = len(batch)
        self.health.incr("entries", entries)
        self.health.incr("batches")
        self.health.incr("rows_written", inserted)
        self.health.incr("duplicates", len(batch.rows) - inserted)
        if batch.trimmed:
            self.health.incr("lost", batch.trimmed)
        log.debug("batch stored", extra={"entries": entries, "rows": inserted})
        return True

    async def _commit(self, batch: Batch) -> int | None:
        delay = RETRY_FIRST_S
        while True:
            try:
                inserted = await asyncio.to_thread(self.store.write, batch.rows)
            except StoreBusy as exc:
                self.health.incr("retries")
                self._degraded(f"sqlite: {exc}")
                log.warning("sqlite refused the batch, retrying", extra={"error": str(exc)})
                if await self.ctx.sleep(delay):
                    return None
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            committed_at = now_ms()
            self.health.set("last_commit", committed_at)
            if batch.oldest_ms is not None:
                self.health.set("commit_lag_ms", max(0, committed_at - batch.oldest_ms))
            return inserted

    async def _dead_letter(self, rejects: list[Reject]) -> None:
        await store_dead_letters(
            self.streams.redis,
            self.ctx.name,
            [(reject.raw(), reject.reason) for reject in rejects],
            maxlen=self.ctx.settings.maxlen_deadletter,
        )
        self.health.incr("deadlettered", len(rejects))
        first = rejects[0]
        log.warning(
            "entries dead-lettered",
            extra={"entries": len(rejects), "stream": first.stream, "reason": first.reason},
        )

    async def _report_lag(self) -> None:
        while not self.ctx.stop.is_set():
            try:
                lag = await self.streams.lag()
                self.health.set(LAG_ENTRIES, lag.entries)
                self.health.set("lag_ms", lag.ms)
            except (*UNAVAILABLE, ResponseError):
                pass
            except Exception:
                log.exception("lag not measured")
            if await self.ctx.sleep(self.ctx.settings.health_interval_s):
                return

    def _ok(self) -> None:
        if self.health.status != "ok":
            self.health.status = "ok"
            self.health.set(LAST_ERROR, "")

    def _degraded(self, error: str) -> None:
        self.health.status = "degraded"
        self.health.set(LAST_ERROR, error[:200])


def _recoverable(exc: ResponseError) -> bool:
    """A stream or group deleted under the writer (Redis restarted empty, a user's DEL): the
    groups are created again and reading goes on."""
    return str(exc).startswith(("NOGROUP", "UNBLOCKED"))


async def _settled(task: asyncio.Task[bool] | None) -> None:
    """Wait for an in-flight flush to finish; its failure is raised here."""
    if task is not None:
        await task


async def _last_flush(task: asyncio.Task[bool] | None) -> None:
    """Wait for the flush in flight when the loop ends. Redis failing it now is no failure of
    the stop: its entries stay pending and are stored at the next start (as duplicates, ignored,
    when the rows were committed before the XACK was lost)."""
    if task is None:
        return
    try:
        await task
    except (*UNAVAILABLE, ResponseError) as exc:
        if isinstance(exc, ResponseError) and not _recoverable(exc):
            raise
        log.warning(
            "last batch not acknowledged, its entries stay pending", extra={"error": str(exc)}
        )
    except asyncio.CancelledError:
        if not task.cancelled():
            raise


async def run(ctx: ServiceContext) -> None:
    """The service body: open the database (migrations applied), then run the writer."""
    settings = ctx.settings
    try:
        store = await asyncio.to_thread(
            TickStore.open, settings.sqlite_path, busy_timeout_ms=settings.writer_busy_timeout_ms
        )
    except (OSError, sqlite3.Error, TickDbError) as exc:
        log.error(
            "cannot open the tick database",
            extra={"path": str(settings.sqlite_path), "error": str(exc)},
        )
        raise StoreUnavailable(f"SQLITE_PATH={str(settings.sqlite_path)!r}: {exc}") from None
    kind = market_kind(settings.source)
    refusal = await asyncio.to_thread(store.claim_market, settings.symbols, kind)
    if refusal:
        await asyncio.to_thread(store.close)
        raise ServiceFailed(f"SQLITE_PATH={str(settings.sqlite_path)!r}: {refusal}", EXIT_CONFIG)
    streams = TickStreams(settings.redis_url, consumer_name(settings), settings.symbols)
    log.info(
        "writing",
        extra={"consumer": streams.consumer, "sqlite": str(settings.sqlite_path)},
    )
    try:
        await Writer(ctx, store, streams).run()
    finally:
        await streams.close()
        await asyncio.to_thread(store.close)
