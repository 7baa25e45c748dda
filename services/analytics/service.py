"""The service body, run under `shared.runtime`."""

from __future__ import annotations

from shared.runtime import ServiceContext


async def run(ctx: ServiceContext) -> None:
    """Report healthy until asked to stop."""
    ctx.health.status = "ok"
    await ctx.stop.wait()
