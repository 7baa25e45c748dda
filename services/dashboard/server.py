"""Serves the Dash app with waitress in a thread while the shared runtime runs the heartbeat."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading

from waitress.server import create_server

from services.dashboard import prefetch, warmup
from services.dashboard.app import build_app
from services.dashboard.recent import RecentEntries
from shared.runtime import EXIT_CONFIG, EXIT_FAILED, ServiceContext, ServiceFailed

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 3.0
CALLBACK_THREADS = 8
"""Threads for requests; each page's push stream holds one more (push.py)."""


def listen_failure(host: str, port: int, exc: Exception) -> tuple[str, int]:
    """Why the dashboard cannot listen on `host:port`, as one line, and the exit status: 2 for a
    setting that can never work (fix DASH_HOST), 1 for a conflict of the moment.

    waitress reports a host it cannot resolve as `ValueError("Invalid host/port specified.")`
    raised while handling the resolver's `socket.gaierror`.
    """
    where = f"cannot listen on DASH_HOST={host!r} DASH_PORT={port}"
    cause = exc.__context__ if isinstance(exc, ValueError) else exc
    if isinstance(cause, socket.gaierror):
        return f"{where}: {host!r} is not a host name or address ({cause.strerror})", EXIT_CONFIG
    if not isinstance(cause, OSError):
        return f"{where}: {exc}", EXIT_CONFIG
    if cause.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host!r} is no address of this machine ({cause.strerror})", EXIT_CONFIG
    if cause.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use (another dashboard? set DASH_PORT)", EXIT_FAILED
    if cause.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges)", EXIT_FAILED
    return f"{where}: {cause.strerror or cause}", EXIT_FAILED


async def run(ctx: ServiceContext) -> None:
    """Serve until asked to stop; then close the listener and let open requests finish."""
    settings = ctx.settings
    recent = RecentEntries()
    app = build_app(settings, recent)
    if settings.dash_debug:
        app.enable_dev_tools(debug=True)
    try:
        server = create_server(
            app.server,
            host=settings.dash_host,
            port=settings.dash_port,
            threads=CALLBACK_THREADS + settings.dash_push_max_clients,
        )
    except (OSError, ValueError) as exc:
        raise ServiceFailed(*listen_failure(settings.dash_host, settings.dash_port, exc)) from None
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    threading.Thread(target=warmup.warm, args=(settings,), name="warmup", daemon=True).start()
    # Not joined at shutdown: it only reads, and a Redis that hangs would hold it for seconds.
    stop_reading_ahead = threading.Event()
    threading.Thread(
        target=prefetch.keep_read,
        args=(settings, recent, stop_reading_ahead),
        name="read-ahead",
        daemon=True,
    ).start()
    log.info("serving", extra={"url": f"http://{settings.dash_host}:{settings.dash_port}/"})
    ctx.health.status = "ok"
    ctx.health.set("url", f"http://{settings.dash_host}:{settings.dash_port}/")
    await ctx.stop.wait()
    stop_reading_ahead.set()
    server.close()
    await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)
