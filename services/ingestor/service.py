"""The ingestor's body: a source, the intake, the publisher, notices and health, and the order
in which they stop.

On SIGTERM: the sources close their sockets (or stop reading their file) first, so no new tick
comes in; the publisher then drains the queue to Redis; the events go out; the body returns
and the runtime exits 0. All within `shared.runtime.SHUTDOWN_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from services.ingestor.backfiller import Backfiller
from services.ingestor.binance import TickRow
from services.ingestor.intake import Intake
from services.ingestor.live import LiveSource
from services.ingestor.notices import Notices
from services.ingestor.probe import Prober
from services.ingestor.publisher import Publisher, publishing_client
from services.ingestor.recorder import Recorder
from services.ingestor.replay import ReplaySource
from services.ingestor.rest import BinanceRest
from services.ingestor.synthetic import SyntheticSource
from shared import keys
from shared.config import Settings, retired_variables
from shared.health import Health
from shared.market import market_kind, mixed_refusal
from shared.redis_io import UNAVAILABLE
from shared.runtime import EXIT_CONFIG, ServiceContext, ServiceFailed

log = logging.getLogger(__name__)

SOURCE_CLOSE_S = 2.0
DRAIN_S = 5.0
NOTICES_FLUSH_S = 0.5


class Source(Protocol):
    @property
    def started(self) -> bool: ...

    @property
    def problems(self) -> list[str]:
        """Why the source is not fine (empty when it is)."""
        ...

    async def run(self) -> None: ...

    async def close(self, why: str = "stopping") -> None:
        """Stop taking ticks in; `why` is for the events of the connections it closes."""
        ...

    def health_fields(self) -> dict[str, int | str]: ...


class Ingestor:
    """Everything between a source and Redis, for one run."""

    def __init__(
        self,
        settings: Settings,
        stop: asyncio.Event,
        *,
        record: Path | None = None,
        on_published: Callable[[Sequence[TickRow]], None] | None = None,
        name: str = "ingestor",
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.redis = publishing_client(settings.redis_url)
        self.notices = Notices(
            self.redis,
            name,
            maxlen_events=settings.maxlen_events,
            maxlen_deadletter=settings.maxlen_deadletter,
        )
        live = settings.source == "binance"
        self.intake = Intake(
            settings.symbols, settings.ingest_queue_size, self.notices, record_gaps=live
        )
        self.rest: BinanceRest | None = None
        self.backfiller: Backfiller | None = None
        if live:
            self.rest = BinanceRest(
                settings.binance_rest_url,
                settings.binance_api_key,
                settings.binance_rest_weight_per_min,
                timeout_s=settings.binance_rest_timeout_s,
            )
            self.backfiller = Backfiller(
                self.redis, self.rest, self.intake, settings.symbols,
                stream=settings.binance_stream, maxlen=settings.maxlen_ticks, stop=stop,
            )  # fmt: skip
        self.publisher = Publisher(
            self.redis,
            self.intake,
            settings.symbols,
            maxlen=settings.maxlen_ticks,
            batch=settings.ingest_batch,
            on_published=on_published,
            on_gaps=None if self.backfiller is None else self.backfiller.add,
        )
        self.source = self._source(record)
        self.backfilling: asyncio.Task[None] | None = None

    def _source(self, record: Path | None) -> Source:
        settings = self.settings
        if settings.source == "replay":
            return ReplaySource(settings, self.intake, self.stop)
        if settings.source == "synthetic":
            return SyntheticSource(settings, self.intake, self.stop)
        recorder = Recorder(record) if record is not None else None
        prober = None if self.rest is None else Prober(self.rest, self.settings.binance_stream)
        return LiveSource(settings, self.intake, self.stop, prober, recorder)

    async def serve(self, health: Health) -> None:
        """Run until `stop` is set, then stop in order. Raises if the source failed."""
        for line in retired_variables():
            log.warning(line)
        with contextlib.suppress(*UNAVAILABLE):
            await self._claim_market()
            await self.publisher.load()
            if self.settings.source == "binance":
                await self._resume_sequences()
        background = [
            asyncio.create_task(self.notices.run(), name="notices"),
            asyncio.create_task(self._report(health), name="health"),
        ]
        if self.backfiller is not None:
            self.backfilling = asyncio.create_task(self._backfill(), name="backfill")
            background.append(self.backfilling)
        publishing = asyncio.create_task(self.publisher.run(), name="publisher")
        sourcing = asyncio.create_task(self.source.run(), name="source")
        try:
            await _first((sourcing, publishing), self.stop)
            if not _failed(sourcing) and not _failed(publishing):
                await self.stop.wait()
            await self._shut_down(sourcing, publishing)
            self._update(health)
        finally:
            for task in (*background, sourcing, publishing):
                task.cancel()
            await asyncio.gather(*background, sourcing, publishing, return_exceptions=True)
            if self.rest is not None:
                await self.rest.close()
            await self.redis.aclose()
        for task, what in ((sourcing, "source"), (publishing, "publisher")):
            if _failed(task):
                raise RuntimeError(f"the {what} failed") from task.exception()

    async def _claim_market(self) -> None:
        """Record the market of each symbol served (`shared.market`); refuse to start on one
        this Redis database holds from the other market."""
        kind = market_kind(self.settings.source)
        symbols = list(self.settings.symbols)
        held = [
            None if v is None else str(v) for v in await self.redis.hmget(keys.MARKETS, symbols)
        ]
        recorded = dict(zip(symbols, held, strict=True))
        refusal = mixed_refusal(recorded, kind, symbols, "this Redis database")
        if refusal:
            raise ServiceFailed(refusal, EXIT_CONFIG)
        pipe = self.redis.pipeline(transaction=False)
        for symbol in symbols:
            pipe.hsetnx(keys.MARKETS, symbol, kind)
        await pipe.execute()

    async def _resume_sequences(self) -> None:
        """Continue each symbol's id sequence from its stream, so that the trades a restart
        missed (the exchange does not send them again) are reported as a gap, not unnoticed."""
        for symbol, (trade_id, ts) in (await self.publisher.newest_trades()).items():
            self.intake.resume(symbol, trade_id, ts)
            log.info(
                "resuming after the stream's newest trade",
                extra={"symbol": symbol, "trade_id": trade_id},
            )

    async def _backfill(self) -> None:
        """Resume the gaps a previous run left, then fill the new ones as they come."""
        assert self.backfiller is not None
        while True:
            try:
                found = await self.backfiller.load()
                break
            except UNAVAILABLE:
                await asyncio.sleep(0.5)
        if found:
            log.info("resuming the back-fill of recorded gaps", extra={"gaps": found})
        await self.backfiller.run()

    async def _shut_down(
        self, sourcing: asyncio.Task[None], publishing: asyncio.Task[None]
    ) -> None:
        if self.stop.is_set():
            why = "stopping"
        else:
            why = f"stopping: the {'publisher' if _failed(publishing) else 'source'} failed"
        await self.source.close(why)
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(sourcing), SOURCE_CLOSE_S)
        queue = self.intake.queue
        queue.close()
        waiting = len(queue)
        if publishing.done():
            log.error("the publisher failed: ticks queued are lost", extra={"lost": waiting})
            return
        try:
            await asyncio.wait_for(publishing, DRAIN_S)
            log.info("queue drained", extra={"ticks": waiting})
        except TimeoutError:
            log.error(
                "ticks not published before the deadline: redis away",
                extra={"lost": len(queue), "queued_at_stop": waiting},
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.notices.flush(), NOTICES_FLUSH_S)

    async def _report(self, health: Health) -> None:
        interval = self.settings.health_interval_s
        while True:
            self._update(health)
            await asyncio.sleep(interval / 2)

    def _update(self, health: Health) -> None:
        intake = self.intake
        states = intake.states
        problems = self.source.problems
        if self.backfilling is not None and _failed(self.backfilling):
            problems.append(f"back-fill stopped: {self.backfilling.exception()!r}")
        if not self.publisher.reachable:
            problems.append(f"ticks wait in the queue: {self.publisher.failure}")
        if intake.overflowing:
            problems.append("tick queue overflowing")
        if health.status == "stopping":
            pass
        elif not self.source.started:
            health.status = "starting"
        else:
            health.status = "degraded" if problems else "ok"
        fields: dict[str, int | str] = {
            "source": self.settings.source,
            "problem": "; ".join(problems),
            "ticks": sum(s.ticks for s in states),
            "published": sum(s.published for s in states),
            "queue_depth": len(intake.queue),
            "queue_size": intake.queue.capacity,
            "overflowed": sum(s.overflowed for s in states),
            "deadlettered": intake.deadlettered,
            "notices_lost": self.notices.lost,
            "redis": "ok" if self.publisher.reachable else "away",
        }
        for state in states:
            fields.update(state.health_fields())
        fields.update(self.source.health_fields())
        if self.backfiller is not None:
            fields.update(self.backfiller.health_fields())
        for name, value in fields.items():
            health.set(name, value)


async def _first(tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait until one of `tasks` ends or `stop` is set."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()


def _failed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


async def run(ctx: ServiceContext, record: Path | None = None) -> None:
    """The service body: `python -m services.ingestor [--record FILE]`."""
    await Ingestor(ctx.settings, ctx.stop, record=record).serve(ctx.health)
