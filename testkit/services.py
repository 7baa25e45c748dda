"""A service body run in the caller's event loop through the services' own runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.config import Settings
from shared.runtime import EXIT_OK, ServiceBody, ServiceContext, ServiceRun

STOP_WITHIN_S = 15.0


@asynccontextmanager
async def running_service(
    name: str, settings: Settings, body: ServiceBody
) -> AsyncIterator[ServiceContext]:
    """Run `body` as service `name` (connection, heartbeat, health record, shutdown: what
    `python -m services.<name>` does) for the duration of the block; then stop it as SIGTERM
    would. A body that failed, or had to be cancelled, fails the block."""
    supervised = ServiceRun(name, settings, body)
    run = asyncio.create_task(supervised.run())
    started = asyncio.create_task(supervised.started.wait())
    await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
    if supervised.ctx is None:
        started.cancel()
        raise RuntimeError(f"{name} did not start: exit status {await run}")
    try:
        yield supervised.ctx
    finally:
        supervised.stop.set()
        code = await asyncio.wait_for(run, STOP_WITHIN_S)
    if code != EXIT_OK or supervised.cancelled:
        raise AssertionError(f"{name} exited {code}, cancelled={supervised.cancelled}")
