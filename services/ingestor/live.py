"""The live source: every configured symbol's feed, and the exchange clock they share."""

from __future__ import annotations

import asyncio
import logging

from services.ingestor.connection import FeedOptions
from services.ingestor.feed import SymbolFeed
from services.ingestor.intake import Intake
from services.ingestor.probe import Prober
from services.ingestor.recorder import Recorder
from shared.config import Settings

log = logging.getLogger(__name__)


class LiveSource:
    """Every configured symbol's feed."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        stop: asyncio.Event,
        prober: Prober | None,
        recorder: Recorder | None = None,
    ) -> None:
        options = FeedOptions.from_settings(settings)
        self.options = options
        self.feeds = [
            SymbolFeed(symbol, options, intake, stop, prober, recorder)
            for symbol in settings.symbols
        ]
        self._prober = prober
        self._recorder = recorder
        self._notices = intake.notices

    async def run(self) -> None:
        note = self.options.endpoint.note(self.options.stream)
        if note is not None:
            log.warning(note)
            self._notices.event("config", note)
        async with asyncio.TaskGroup() as group:
            if self._prober is not None:
                group.create_task(self._prober.sync_clock(), name="exchange-clock")
            for feed in self.feeds:
                group.create_task(feed.run(), name=f"feed-{feed.symbol}")

    async def close(self, why: str = "stopping") -> None:
        await asyncio.gather(*(feed.close(why) for feed in self.feeds))
        if self._recorder is not None:
            self._recorder.close()

    def health_fields(self) -> dict[str, int | str]:
        fields: dict[str, int | str] = {}
        for feed in self.feeds:
            fields[f"route:{feed.symbol}"] = feed.route.label
            fields[f"quiet_checks:{feed.symbol}"] = feed.quiet_checks
        return fields

    @property
    def problems(self) -> list[str]:
        return [problem for feed in self.feeds if (problem := feed.problem)]

    @property
    def started(self) -> bool:
        """Every feed has tried to connect at least once."""
        return all(feed.attempts for feed in self.feeds)
