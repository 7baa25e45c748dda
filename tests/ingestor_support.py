"""Running the ingestor in a test's event loop, and reading what it wrote to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from services.ingestor.service import Ingestor
from services.ingestor.state import SymbolState
from shared import keys
from shared.config import Settings, load_settings
from shared.health import Health
from shared.redis_io import Redis
from shared.runtime import ServiceContext
from shared.schemas import Event, Tick
from testkit.binance_ws import BinanceServer
from testkit.polling import eventually
from testkit.processes import free_port
from testkit.services import running_service


def ingestor_settings(
    redis_url: str, server: BinanceServer | None = None, rest_url: str | None = None,
    **overrides: Any,
) -> Settings:  # fmt: skip
    """Settings for an ingestor run in a test: a private Redis, the local servers, and timeouts
    short enough that reconnects and stale connections take fractions of a second. Without
    `rest_url` REST points at a closed port: it never answers."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "binance_stale_timeout_s": 1.0,
        "binance_reconnect_base_s": 0.05,
        "binance_reconnect_max_s": 0.2,
        "health_interval_s": 0.1,
        "binance_rest_url": rest_url or f"http://127.0.0.1:{free_port()}",
    }
    if server is not None:
        values.update(binance_ws_url=server.base)
    values.update(overrides)
    return load_settings(**values)


@dataclass
class RunningIngestor:
    ingestor: Ingestor
    health: Health
    stop: asyncio.Event

    @property
    def stopped(self) -> bool:
        """The service has ended or is ending (the runtime sets `stop` when its body returns)."""
        return self.stop.is_set()

    @property
    def counters(self) -> dict[str, Any]:
        self.ingestor._update(self.health)
        return dict(self.health.counters)

    def state(self, symbol: str) -> SymbolState:
        return self.ingestor.intake.state(symbol)


@asynccontextmanager
async def running_ingestor(settings: Settings) -> AsyncIterator[RunningIngestor]:
    """The ingestor in this event loop, through the runtime `python -m services.ingestor` runs;
    stopped as SIGTERM would stop it when the block ends."""
    made: list[Ingestor] = []

    async def body(ctx: ServiceContext) -> None:
        made.append(Ingestor(ctx.settings, ctx.stop))
        await made[0].serve(ctx.health)

    async with running_service("ingestor", settings, body) as ctx:
        assert await eventually(lambda: bool(made))
        yield RunningIngestor(made[0], ctx.health, ctx.stop)


async def stream_ticks(redis: Redis, symbol: str) -> list[Tick]:
    """Every entry of `ticks:<symbol>` as `Tick`s, oldest first."""
    return [Tick.from_fields(fields) for fields in await _entries(redis, keys.ticks(symbol))]


async def _entries(redis: Redis, stream: str) -> list[dict[str, str]]:
    """The fields of every entry of `stream`, oldest first (replies are decoded text)."""
    reply = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream))
    return [fields for _, fields in reply]


async def stream_length(redis: Redis, symbol: str) -> int:
    return int(await redis.xlen(keys.ticks(symbol)))


async def has_ticks(redis: Redis, symbol: str, count: int) -> bool:
    """`ticks:<symbol>` holds exactly `count` entries."""
    return await stream_length(redis, symbol) == count


async def events(redis: Redis, kind: str | None = None) -> list[Event]:
    found = [Event.from_fields(fields) for fields in await _entries(redis, keys.EVENTS)]
    return [e for e in found if kind is None or e.kind == kind]


async def dead_letters(redis: Redis) -> list[dict[str, str]]:
    return await _entries(redis, keys.deadletter("ingestor"))
