"""The run loop every service uses: settings, logging, Redis, heartbeat, graceful shutdown.

Shutdown is a sequence. SIGTERM or SIGINT sets `ctx.stop`; the service body notices it between
iterations (every blocking call it makes is bounded, about a second), finishes or hands back its
in-flight work and returns. A body still running after `SHUTDOWN_GRACE_S` is cancelled, and a
second signal cancels it at once. The health record is then marked `stopped` (given at most
`FINAL_RECORD_S`) and the process exits 0 inside Docker Compose's 10 s `stop_grace_period`, even
when Redis hangs: a `redis_io.client()` connection awaits a reply at most `SOCKET_TIMEOUT_S`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from shared import keys
from shared.config import ConfigError, Settings, load_settings
from shared.events import dead_letter, emit_event
from shared.health import Health, is_fresh, stale_after_ms
from shared.heartbeat import heartbeat
from shared.logs import setup_logging
from shared.redis_io import UNAVAILABLE, Redis, RedisUnavailable, client, connect, decoded

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 7.0
FINAL_RECORD_S = 1.0
"""How long the last health record (`stopped`) and closing the connection may take, each."""
REPEAT_WINDOW_S = 2.0
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class ServiceFailed(RuntimeError):
    """The service body cannot go on, for a reason its message tells in full (a port in use, a
    database that cannot be opened): logged as one line, no traceback, and the process exits
    with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ServiceContext:
    """What a service body gets: its settings, a Redis client, its health record, the stop flag."""

    name: str
    settings: Settings
    redis: Redis
    health: Health
    stop: asyncio.Event

    async def event(self, kind: str, detail: str, symbol: str = "") -> bool:
        return await emit_event(
            self.redis,
            self.name,
            kind,
            detail,
            symbol=symbol,
            maxlen=self.settings.maxlen_events,
        )

    async def dead_letter(self, raw: str | bytes, reason: str) -> bool:
        self.health.incr("deadlettered")
        return await dead_letter(
            self.redis, self.name, raw, reason, maxlen=self.settings.maxlen_deadletter
        )

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when the stop flag was set meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        return self.stop.is_set()


ServiceBody = Callable[[ServiceContext], Coroutine[Any, Any, None]]


def service_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The common command line: `python -m services.<name> [--check]`."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=description)
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 0 when health:{name} shows a live, healthy service, 1 otherwise",
    )
    return parser


def settings_or_exit(name: str) -> Settings:
    """Load settings; on a bad value print one line naming it and exit with status 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def stop_on_signals(stop: asyncio.Event, on_second: Callable[[], None]) -> None:
    """SIGTERM/SIGINT set `stop`; a signal repeated later than `REPEAT_WINDOW_S` calls
    `on_second` (cancel at once). Repeats inside the window are the same request delivered twice
    (a terminal's SIGINT to the process group plus a process manager's SIGTERM)."""
    loop = asyncio.get_running_loop()
    first_at: list[float] = []

    def handle(signum: int) -> None:
        name = signal.Signals(signum).name
        if not first_at:
            first_at.append(loop.time())
            log.info("stopping", extra={"signal": name})
            stop.set()
        elif loop.time() - first_at[0] > REPEAT_WINDOW_S:
            log.warning("second signal, cancelling in-flight work", extra={"signal": name})
            on_second()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)


async def _connect_unless_stopped(url: str, stop: asyncio.Event) -> Redis | None:
    connecting = asyncio.create_task(connect(url))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        return None
    return connecting.result()


class ServiceRun:
    """One run of a service body under supervision: connect, heartbeat, stop, final record.

    `run_service` drives it from signals; tests drive the same object in their own event loop
    (setting `stop`), so a service under test runs exactly as `python -m services.<name>`.
    """

    def __init__(self, name: str, settings: Settings, body: ServiceBody) -> None:
        self.name = name
        self.settings = settings
        self.body = body
        self.stop = asyncio.Event()
        self.started = asyncio.Event()
        """Set once the body runs (`ctx` is then its context)."""
        self.ctx: ServiceContext | None = None
        self.cancelled = False
        """Whether the body had to be cancelled (a second signal, or past the grace period)."""
        self._body_task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        """Cancel the body at once (a second signal)."""
        if self._body_task is not None and not self._body_task.done():
            self.cancelled = True
            self._body_task.cancel()

    async def run(self) -> int:
        """Until the body returns or `stop` is set and the body has finished: the exit status."""
        try:
            redis = await _connect_unless_stopped(self.settings.redis_url, self.stop)
        except RedisUnavailable as exc:
            log.error("giving up: %s", exc)
            return EXIT_FAILED
        if redis is None:
            return EXIT_OK
        health = Health(self.name)
        ctx = ServiceContext(self.name, self.settings, redis, health, self.stop)
        self.ctx = ctx
        finished = asyncio.Event()
        beating = asyncio.create_task(
            heartbeat(redis, health, self.settings.health_interval_s, finished)
        )
        body_task = self._body_task = asyncio.create_task(self.body(ctx))
        self.started.set()
        log.info("started", extra={"redis": self.settings.redis_url})
        code = EXIT_OK
        try:
            stopping = asyncio.create_task(self.stop.wait())
            await asyncio.wait({body_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not body_task.done():
                health.status = "stopping"
                done, _ = await asyncio.wait({body_task}, timeout=SHUTDOWN_GRACE_S)
                if not done:
                    log.warning("in-flight work not finished in time, cancelling")
                    self.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await body_task
        except ServiceFailed as exc:
            log.error("%s", exc)
            code = exc.code
        except Exception:
            log.exception("service failed")
            code = EXIT_FAILED
        finally:
            self.stop.set()
            finished.set()
            if not await _within(beating, FINAL_RECORD_S):
                log.warning("final health record not published, redis did not answer in time")
            await _within(redis.aclose(), FINAL_RECORD_S)
        log.info("stopped", extra={"exit": code})
        return code


async def _supervise(name: str, settings: Settings, body: ServiceBody) -> int:
    supervised = ServiceRun(name, settings, body)
    stop_on_signals(supervised.stop, supervised.cancel)
    return await supervised.run()


async def _within(work: Awaitable[None], seconds: float) -> bool:
    """Await `work` for at most `seconds` (cancelled after that); False when it did not finish
    in time or Redis failed it."""
    try:
        await asyncio.wait_for(work, timeout=seconds)
        return True
    except (TimeoutError, *UNAVAILABLE):
        return False


def run_service(name: str, settings: Settings, body: ServiceBody) -> int:
    """Run `body` as service `name` until it returns or a signal stops it; the exit status."""
    setup_logging(name, settings.log_level, settings.log_format)
    return asyncio.run(_supervise(name, settings, body))


async def _check(name: str, settings: Settings) -> int:
    redis = client(settings.redis_url)
    try:
        record = decoded(await redis.hgetall(keys.health(name)))
    except UNAVAILABLE as exc:
        print(f"{name}: redis unreachable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await redis.aclose()
    max_age_ms = stale_after_ms(settings.health_interval_s)
    if is_fresh(record, max_age_ms):
        print(f"{name}: {record.get('status')}")
        return EXIT_OK
    print(f"{name}: not healthy: {record or 'no health record'}", file=sys.stderr)
    return EXIT_FAILED


def check_health(name: str, settings: Settings) -> int:
    """`--check`: 0 when the service's heartbeat is recent and its status ok or degraded."""
    return asyncio.run(_check(name, settings))


def service_main(
    name: str, description: str, body: ServiceBody, argv: Sequence[str] | None = None
) -> int:
    """The whole `python -m services.<name>` for a service without subcommands."""
    args = service_parser(name, description).parse_args(argv)
    settings = settings_or_exit(name)
    if args.check:
        return check_health(name, settings)
    return run_service(name, settings, body)
