"""The analytics worker: ticks in through consumer group `analytics`, bars, statistics, alerts out.

The loop: read a batch of ticks (raw replies, `ticks.py`) from every symbol's stream and the
requests stream, add them to the finest bars, close every bar the event clock allows, publish.
Publishing a close is done in two phases: first the bars and the fast statistics of every view
(the latest hashes the dashboard polls), then the slow work (Huber hedges, the stationarity tests
due on this bar) and the alerts. Every `POLL_S` the worker reloads the views users asked for and
the alert rules, and refreshes its health record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.exceptions import ResponseError

from services.analytics.alerts import RuleBook
from services.analytics.engine import Analytics, Step
from services.analytics.fill import fill_view
from services.analytics.pairs import Entry, ViewState, complete
from services.analytics.publisher import Outbox
from services.analytics.rebuild import rebuild, revrange, set_groups
from services.analytics.ticks import (
    BadTick,
    TickReader,
    as_mapping,
    describe_entry,
    parse_entry,
    raw_streams,
)
from services.analytics.views import ViewRegistry, default_views
from shared import keys
from shared.config import Settings
from shared.health import now_ms
from shared.history import History
from shared.pairstats import MIN_BARS, stationarity
from shared.redis_io import RAW_REPLY, UNAVAILABLE, Redis, ensure_group, text_hash
from shared.runtime import ServiceContext
from shared.schemas import Alert, AnalyticsRequest, SchemaError
from shared.views import PairView

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
        settings: Settings = ctx.settings
        self.ctx = ctx
        self.settings = settings
        self.redis: Redis = ctx.redis
        self.history = history
        self.analytics = Analytics(settings)
        self.outbox = Outbox(settings)
        defaults = default_views(settings.pair_legs, settings.timeframes, settings.window)
        self.defaults = {view.id for view in defaults}
        self.registry = ViewRegistry(
            settings.symbols, settings.timeframes, defaults, settings.max_views
        )
        self.rules = RuleBook(settings.symbols, settings.timeframes, settings.window)
        self.stream_symbol = {keys.ticks(s): s for s in settings.symbols}
        self.read_ids: dict[str, str] = {stream: ">" for stream in self.stream_symbol}
        self.read_ids[keys.ANALYTICS_REQUESTS] = ">"
        self.reader = TickReader(
            settings.redis_url, keys.ANALYTICS_GROUP, CONSUMER, list(self.read_ids), COUNT,
            BLOCK_MS,
        )  # fmt: skip
        self.requested: set[str] = set()
        self.fills: asyncio.Queue[ViewState] = asyncio.Queue()
        self.filling: tuple[ViewState, asyncio.Task[int]] | None = None
        self.next_poll = 0.0
        self.reachable = True
        self.last_recv_ts = 0
        self.last_update = 0

    # Start.

    async def start(self) -> None:
        """Views and rules as stored, state rebuilt from history, consumer groups in place."""
        health = self.ctx.health
        stored_rules, stored_count, members = await self._read_views_and_rules()
        await self._report(self.rules.load(stored_rules, stored_count), "bad-rule")
        requested, problems = self.registry.requested(members)
        await self._report(problems, "bad-view")
        for view_id in sorted(self.defaults):
            self.analytics.add_view(PairView.parse(view_id))
        for view in [*requested, *self.rules.views()]:
            self.analytics.add_view(view)
        self.requested = {view.id for view in requested}
        report = await rebuild(
            self.redis, self.analytics, self.history, self.settings.view_fill_bars
        )
        empty = [state for state in self.analytics.views() if state.published_until is None]
        for state in empty:
            state.ready = False
        await self._restore_fired()
        for state in self.analytics.views():
            self.rules.prime(state.id, state.last, state.stationarity)
        self.analytics.clock.resume(report.event_ts, monotonic_ms())
        horizon = self.analytics.clock.horizon(monotonic_ms())
        if horizon is not None:
            await self.publish(self.analytics.close(horizon))
        for state in empty:
            if self._aligned_bars(state) >= MIN_BARS:
                self.fills.put_nowait(state)
            else:
                state.ready = True
        await set_groups(self.redis, report.tails)
        health.set("rebuilt_history_bars", report.history_bars)
        health.set("rebuilt_stream_ticks", report.stream_ticks)
        log.info(
            "state rebuilt",
            extra={"history_bars": report.history_bars, "stream_ticks": report.stream_ticks},
        )

    async def _read_views_and_rules(self) -> tuple[dict[str, str], int, list[str]]:
        """The stored rules, how many the hash holds (more than read when ids that are not
        UTF-8 decode alike), and the views requested."""
        now = now_ms()
        pipe = self.redis.pipeline(transaction=False)
        pipe.execute_command("HGETALL", keys.ALERT_RULES, **RAW_REPLY)
        pipe.hlen(keys.ALERT_RULES)
        pipe.zrangebyscore(keys.ANALYTICS_VIEWS, now, "+inf")
        pipe.zremrangebyscore(keys.ANALYTICS_VIEWS, "-inf", f"({now}")
        rules, count, members, _ = await pipe.execute()
        return text_hash(rules), int(count), [str(m) for m in members]

    async def _restore_fired(self) -> None:
        recent = await revrange(self.redis, keys.ALERTS, count=RECENT_ALERTS)
        for _, fields in reversed(recent):
            try:
                alert = Alert.from_fields(fields)
            except SchemaError:
                continue
            self.rules.last_fired[alert.rule] = alert.ts
        for state in self.rules.rules.values():
            state.last_fired = self.rules.last_fired.get(state.rule_id)

    async def _report(self, problems: list[str], kind: str) -> None:
        for problem in problems:
            log.warning(problem)
            self.ctx.health.incr(f"{kind.replace('-', '_')}s")
            await self.ctx.event(kind, problem)

    # The loop.

    async def run(self) -> None:
        filler = asyncio.create_task(self._fill_loop())
        try:
            while not self.ctx.stop.is_set():
                try:
                    await self._iterate()
                    if not self.reachable:
                        self.reachable = True
                        self.ctx.health.status = "ok"
                        log.warning("redis reachable again")
                except UNAVAILABLE as exc:
                    if self.reachable:
                        self.reachable = False
                        self.ctx.health.status = "degraded"
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
        try:
            reply = await self.reader.read()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group missing (redis restarted?), creating it")
            for stream in self.read_ids:
                await ensure_group(self.redis, stream, keys.ANALYTICS_GROUP, "0")
            return
        wall = monotonic_ms()
        held = await self.ingest(reply, wall)
        horizon = self.analytics.clock.horizon(wall, held)
        if horizon is not None:
            step = self.analytics.close(horizon)
            if step:
                await self.publish(step)

    async def ingest(self, reply: Any, wall: float) -> int | None:
        """Add a batch of ticks to the bars; the clock hold of streams read in full."""
        analytics = self.analytics
        add = analytics.bars.add_tick
        held: int | None = None
        consumed = 0
        bad: list[tuple[str, str]] = []
        for stream, entries in raw_streams(reply):
            symbol = self.stream_symbol.get(stream)
            if symbol is None:
                await self.requests(entries)
                continue
            index = analytics.index[symbol]
            last_ts: int | None = None
            recv_ts = 0
            for entry_id, flat in entries:
                try:
                    ts, price, size, recv_ts = parse_entry(flat, symbol)
                except BadTick as exc:
                    bad.append((describe_entry(stream, entry_id, flat), str(exc)))
                    continue
                add(index, ts, price, size)
                last_ts = ts
            consumed += len(entries)
            if last_ts is None:
                continue
            analytics.clock.observe(last_ts, wall, index)
            self.last_recv_ts = max(self.last_recv_ts, recv_ts)
            if len(entries) >= COUNT and (held is None or last_ts < held):
                held = last_ts
        if consumed:
            self.ctx.health.incr("ticks_consumed", consumed - len(bad))
        for raw, reason in bad:
            await self.ctx.dead_letter(raw, reason)
        return held

    async def requests(self, entries: list[tuple[str, list[str]]]) -> None:
        """`analytics-requests`: `kind=adf view=<id>` computes the stationarity now."""
        for entry_id, flat in entries:
            try:
                request = AnalyticsRequest.from_fields(as_mapping(flat))
            except SchemaError as exc:
                await self._report([f"request {entry_id}: {exc}"], "bad-request")
                continue
            state = self.analytics.view(request.view)
            if request.kind != "adf":
                problem = f"request {entry_id}: unknown kind {request.kind!r}"
                await self._report([problem], "bad-request")
            elif state is None or not state.ready:
                problem = f"request {entry_id}: view {request.view!r} is not served"
                await self._report([problem], "bad-request")
            else:
                self.adf_now(state)

    def adf_now(self, state: ViewState) -> None:
        pairs = self.analytics.pairs[state.view.tf]
        count = pairs.matrix.count
        n = min(int(count[state.a]), int(count[state.b]), state.view.window)
        beta = state.last.beta if state.last is not None else float("nan")
        if n >= 3:
            extra = stationarity(pairs.matrix.row(state.a, n), pairs.matrix.row(state.b, n), beta)
            fields = extra.fields()
            if fields:
                self.outbox.hset(state.latest_key, fields)
                state.latest_extra = True
            state.stationarity = extra
        state.force_adf = True
        self.ctx.health.incr("adf_requests")

    # Publishing.

    async def publish(self, step: Step) -> None:
        out = self.outbox
        health = self.ctx.health
        for tf, count in step.closed.items():
            health.incr(f"bars_closed_{tf}", count)
        for tf, symbol, bar in step.bars:
            out.bar(tf, symbol, bar)
        slow: list[Entry] = []
        deferred: set[ViewState] = set()
        by_view: dict[ViewState, list[Entry]] = {}
        for entry in step.entries:
            by_view.setdefault(entry.view, []).append(entry)
            if entry.slow or entry.view in deferred:
                deferred.add(entry.view)
                slow.append(entry)
                if entry.stat is not None:
                    out.latest(entry.view, entry.stat)
            else:
                assert entry.stat is not None
                out.publish(entry.view, entry.stat)
                entry.view.last, entry.view.published_until = entry.stat, entry.start
        await self._flush_or_keep()
        newest = {entry.view: entry.start for entry in slow}
        for entry in slow:
            stat = complete(entry, self.settings.kalman_delta)
            if entry.due:
                health.incr("adf_runs")
            out.publish(entry.view, stat, latest=newest[entry.view] == entry.start)
            entry.view.last, entry.view.published_until = stat, entry.start
        for state, entries in by_view.items():
            stats = [entry.stat for entry in entries if entry.stat is not None]
            for alert in self.rules.evaluate(state.id, stats, state.stationarity):
                out.alert(alert)
                health.incr("alerts_fired")
        health.incr("stats_published", len(step.entries))
        if step.entries:
            self.last_update = now_ms()
        await self._flush_or_keep()

    async def _flush_or_keep(self) -> None:
        """Send the output; when Redis is away keep it for the next try and carry on, so a
        close is always completed (its slow entries and alerts computed) before the loop
        notices the outage."""
        try:
            await self.outbox.flush(self.redis)
        except UNAVAILABLE:
            self.outbox.trim()

    # Views, rules, health.

    async def poll(self) -> None:
        stored_rules, stored_count, members = await self._read_views_and_rules()
        await self._report(self.rules.load(stored_rules, stored_count), "bad-rule")
        requested, problems = self.registry.requested(members)
        await self._report(problems, "bad-view")
        self.requested = {view.id for view in requested}
        wanted = {view.id: view for view in [*requested, *self.rules.views()]}
        for view_id in self.defaults:
            wanted.pop(view_id, None)
        current = {s.id: s for s in self.analytics.views() if s.id not in self.defaults}
        for view_id, state in current.items():
            if view_id not in wanted:
                await self.drop(state)
        for view_id, view in wanted.items():
            if view_id not in current:
                state = self.analytics.add_view(view)
                state.ready = False
                self.fills.put_nowait(state)
                log.info("view added", extra={"view": view_id})
        for state in self.analytics.views():
            self.rules.prime(state.id, state.last, state.stationarity)
        await self.refresh_health()

    async def drop(self, state: ViewState) -> None:
        self.analytics.remove_view(state.id)
        if self.filling is not None and self.filling[0] is state:
            self.filling[1].cancel()
        await self.redis.delete(state.stream_key, state.latest_key)
        log.info("view dropped", extra={"view": state.id})

    async def _fill_loop(self) -> None:
        while True:
            state = await self.fills.get()
            if state.ready or self.analytics.view(state.id) is not state:
                continue
            task = asyncio.create_task(
                fill_view(
                    self.redis, self.analytics, self.history, state, self.outbox,
                    self.settings.view_fill_bars, self._filled,
                )
            )  # fmt: skip
            self.filling = (state, task)
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
                with contextlib.suppress(*UNAVAILABLE):
                    await self.redis.delete(state.stream_key, state.latest_key)
            except UNAVAILABLE:
                await asyncio.sleep(0.5)
                self.fills.put_nowait(state)
            except Exception:
                log.exception("view fill failed; serving it live only", extra={"view": state.id})
                state.published_until = self.analytics.pairs[state.view.tf].matrix.last_start
                state.ready = True
            finally:
                self.filling = None

    def _aligned_bars(self, state: ViewState) -> int:
        count = self.analytics.pairs[state.view.tf].matrix.count
        return min(int(count[state.a]), int(count[state.b]))

    def _filled(self, state: ViewState, stats: list[Any]) -> None:
        self.ctx.health.incr("views_filled")
        self.rules.prime(state.id, state.last, state.stationarity)
        log.info("view filled", extra={"view": state.id, "entries": len(stats)})

    async def refresh_health(self) -> None:
        health = self.ctx.health
        analytics = self.analytics
        states = analytics.views()
        health.set("pairs_served", len(self.settings.pair_legs))
        health.set("views_served", sum(1 for s in states if s.ready))
        health.set("views_requested", len(self.requested))
        health.set("views_filling", sum(1 for s in states if not s.ready))
        health.set("rules_active", len(self.rules.rules))
        health.set("rules_disabled", len(self.rules.disabled))
        health.set("rules_invalid", len(self.rules.invalid) + self.rules.unreadable)
        health.set("late_ticks", analytics.bars.late)
        health.set("intervals_skipped", sum(book.skipped for book in analytics.bars.books))
        health.set("last_update", self.last_update)
        health.set("event_time", analytics.clock.high or 0)
        health.set("lag_ms", max(0, now_ms() - self.last_recv_ts) if self.last_recv_ts else 0)
        health.set("pending_output", len(self.outbox))
        pipe = self.redis.pipeline(transaction=False)
        streams = list(self.stream_symbol)
        for stream in streams:
            pipe.xinfo_groups(stream)
        backlog = 0
        for groups in await pipe.execute(raise_on_error=False):
            if isinstance(groups, Exception):
                continue
            for group in groups:
                if group.get("name") == keys.ANALYTICS_GROUP and group.get("lag") is not None:
                    backlog += int(group["lag"])
        health.set("backlog", backlog)


def open_history(settings: Settings) -> History:
    return History(settings.sqlite_path)


async def run(ctx: ServiceContext) -> None:
    """Rebuild the state, then serve until asked to stop."""
    history = open_history(ctx.settings)
    worker = Worker(ctx, history)
    try:
        await worker.start()
        ctx.health.status = "ok"
        await worker.refresh_health()
        await worker.run()
    finally:
        history.close()
