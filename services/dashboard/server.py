"""Serves the Dash app with waitress in a thread while the shared runtime runs the heartbeat."""

from __future__ import annotations

import asyncio
import logging
import threading

from waitress.server import create_server

from services.dashboard.app import build_app
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 3.0


async def run(ctx: ServiceContext) -> None:
    """Serve until asked to stop; then close the listener and let open requests finish."""
    settings = ctx.settings
    app = build_app(settings)
    if settings.dash_debug:
        app.enable_dev_tools(debug=True)
    server = create_server(app.server, host=settings.dash_host, port=settings.dash_port, threads=8)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    log.info("serving", extra={"url": f"http://{settings.dash_host}:{settings.dash_port}/"})
    ctx.health.status = "ok"
    ctx.health.set("url", f"http://{settings.dash_host}:{settings.dash_port}/")
    await ctx.stop.wait()
    server.close()
    await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)
