"""Filling gaps from REST, on tasks of their own: the live path never waits for it.

A gap reaches the back-filler once it is recorded in `gaps:<SYMBOL>` (the publisher records it
with the tick after it; a restart reads the records left by the run before). Each symbol has
one task that fills its gaps in id order, page by page. Each page's ticks go to
`backfill:<SYMBOL>` in one `PUBLISH_BACKFILL` call that also moves the gap's record past the
page, so a crash resumes where it stopped and never adds a tick twice. The `gap` event is
followed by `backfilled` (ids, ticks, source) or `backfill_failed` (why).

Failures: timeouts, 5xx, 429 and 418 are asked again, as the budget allows, with a back-off up
to `RETRY_MAX_S`; an answer that does not fit (`RestBadAnswer`, `AnswerProblem`) is
dead-lettered and asked again, up to `BAD_ANSWERS` times; a refusal (a bad API key, an
unknown symbol), or ids REST no longer serves, end the gap with `backfill_failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import orjson
from redis.exceptions import ResponseError

from services.ingestor.backfill import (
    AnswerProblem,
    Filled,
    IdRun,
    Known,
    NeedIds,
    aggregate_ticks,
    check_aggregates,
    fill_from_aggregate_ids,
    fill_from_trades,
    runs_without,
)
from services.ingestor.gaps import Gap, merged
from services.ingestor.intake import Intake
from services.ingestor.library import BACKFILL_FIELDS, LIBRARY
from services.ingestor.rest import (
    AGG_LIMIT,
    AGG_WINDOW_MS,
    HISTORICAL_LIMIT,
    BinanceRest,
    RestBadAnswer,
    RestFailure,
    RestRefused,
)
from services.ingestor.rest_records import AggTrade
from services.ingestor.routes import StreamKind
from services.ingestor.stored_ticks import StoredTicks
from shared import keys
from shared.health import BACKFILL_WAITING, now_ms
from shared.redis_io import UNAVAILABLE, Redis
from shared.schemas import Tick

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_FIRST_S, RETRY_MAX_S = 1.0, 60.0
BAD_ANSWERS = 3
"""Answers that do not fit, in a row, before a gap is given up."""
EDGE_WAIT_S = 5.0
"""How long an aggregate cut by a gap's far edge waits for its other trades on the socket
before the ingestor takes them as missing too."""
EDGE_GIVE_UP_S = 30.0
"""How long it waits for trades received but not yet in Redis (the queue is behind)."""
EDGE_POLL_S = 0.1


class GiveUp(Exception):
    """The gap (from its current start), or one aggregate of it, cannot be filled; the
    message says why."""


class Stopping(Exception):
    """The ingestor is stopping: the gap stays recorded and is resumed at the next start."""


@dataclass
class SymbolGaps:
    """One symbol's gaps waiting, and what the back-filler has done for it."""

    symbol: str
    pending: list[Gap] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    done_through: int = -1
    """Every id up to this one is filled or given up."""
    ticks: int = 0
    failed: int = 0
    unlisted: int = 0

    def add(self, gaps: Sequence[Gap]) -> None:
        self.pending = merged([*self.pending, *gaps])
        self.wake.set()

    @property
    def waiting_ids(self) -> int:
        return sum(g.last - max(g.first, self.done_through + 1) + 1 for g in self.pending
                   if g.last > self.done_through)  # fmt: skip


def encode_backfill(ticks: Sequence[Tick]) -> bytes:
    """The rows argument of `PUBLISH_BACKFILL`: each tick's fields in `BACKFILL_FIELDS` order."""
    rows = []
    for tick in ticks:
        fields = tick.to_fields()
        fields.setdefault("last_trade_id", str(tick.covers_through))
        fields.setdefault("source", tick.source)
        rows.append([fields[name] for name in BACKFILL_FIELDS])
    return orjson.dumps(rows)


def _runs_of(gaps: Sequence[Gap], first: int, last: int) -> list[IdRun]:
    """The ids of `first..last` inside any of `gaps`, as runs."""
    runs = []
    for gap in gaps:
        low, high = max(gap.first, first), min(gap.last, last)
        if low <= high:
            runs.append((low, high))
    return runs


def _minus(runs: Sequence[IdRun], ranges: Sequence[tuple[int, int, str]]) -> list[IdRun]:
    result: list[IdRun] = []
    taken = sorted(i for a, b, _ in ranges for i in range(a, b + 1))
    for first, last in runs:
        result.extend(runs_without(first, last, taken))
    return result


class Backfiller:
    def __init__(
        self,
        redis: Redis,
        rest: BinanceRest,
        intake: Intake,
        symbols: Sequence[str],
        *,
        stream: StreamKind,
        maxlen: int,
        stop: asyncio.Event,
    ) -> None:
        self.redis = redis
        self.stored = StoredTicks(redis)
        self.rest = rest
        self.intake = intake
        self.notices = intake.notices
        self.stream = stream
        self.maxlen = str(maxlen)
        self.stop = stop
        self.symbols = {symbol: SymbolGaps(symbol) for symbol in symbols}
        self.mode = (
            "aggregate ids" if stream == "aggTrade" else "trades" if rest.has_key else "aggregates"
        )
        self.source = "rest" if self.mode == "trades" else "rest-agg"

    def add(self, gaps: Sequence[Gap]) -> None:
        """Gaps now recorded in Redis (the publisher's hand-over)."""
        for gap in gaps:
            self.symbols[gap.symbol].add([gap])

    async def load(self) -> int:
        """The gaps a previous run recorded and did not fill; how many."""
        found = 0
        for symbol, gaps in self.symbols.items():
            records = cast(dict[str, str], await self.redis.hgetall(keys.gaps(symbol)))
            loaded = []
            for name, value in records.items():
                try:
                    loaded.append(Gap.decode(symbol, name, value))
                except ValueError as exc:
                    self.notices.dead_letter(f"{name} {value}", f"{symbol}: {exc}")
                    await self.redis.hdel(keys.gaps(symbol), name)
            gaps.add(loaded)
            found += len(loaded)
        return found

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for gaps in self.symbols.values():
                group.create_task(self._serve(gaps), name=f"backfill-{gaps.symbol}")

    def health_fields(self) -> dict[str, int | str]:
        fields: dict[str, int | str] = {"backfill_mode": self.mode}
        for gaps in self.symbols.values():
            s = gaps.symbol
            fields[f"{BACKFILL_WAITING}{s}"] = gaps.waiting_ids
            fields[f"backfilled:{s}"] = gaps.ticks
            fields[f"backfill_failed:{s}"] = gaps.failed
        stats = self.rest.stats
        fields["rest_requests"] = stats.requests
        fields["rest_failures"] = stats.failures
        fields["rest_throttled"] = stats.throttled
        fields["rest_banned_until"] = stats.banned_until_ms
        fields["rest_weight_used"] = self.rest.budget.used(time.monotonic())
        fields["rest_exchange_weight"] = stats.exchange_used_weight
        return fields

    # One symbol.

    async def _serve(self, gaps: SymbolGaps) -> None:
        while not self.stop.is_set():
            while gaps.pending and gaps.pending[0].last <= gaps.done_through:
                gaps.pending.pop(0)
            if not gaps.pending:
                gaps.wake.clear()
                await gaps.wake.wait()
                continue
            gap = gaps.pending[0]
            if gap.first <= gaps.done_through:
                gap = gap.starting_at(gaps.done_through + 1)
            try:
                await self._fill(gaps, gap)
            except Stopping:
                return
            except UNAVAILABLE as exc:
                log.warning("back-fill waits for redis", extra={"error": str(exc)})
                if await self._sleep(RETRY_FIRST_S):
                    return
            except Exception as exc:  # a bug must not stop the live feed: report, go on
                log.exception("back-fill failed", extra={"symbol": gaps.symbol})
                try:
                    await self._give_up(gaps, gap, f"internal error: {exc!r}")
                except Stopping:
                    return
                except Exception:
                    log.exception("back-fill gap not given up", extra={"symbol": gaps.symbol})
                    if await self._sleep(RETRY_MAX_S):
                        return

    async def _fill(self, gaps: SymbolGaps, gap: Gap) -> None:
        started = (gaps.ticks, gaps.unlisted)
        try:
            if self.mode == "aggregates":
                await self._fill_from_aggregates(gaps, gap)
            else:
                await self._fill_by_ids(gaps, gap)
        except GiveUp as exc:
            await self._give_up(gaps, gap, str(exc))
            return
        ticks, unlisted = gaps.ticks - started[0], gaps.unlisted - started[1]
        detail = f"ids {gap.first}..{gap.last}: {ticks} ticks from {self.source}"
        if unlisted:
            detail += f"; {unlisted} ids REST does not list (not market trades, or too old)"
        self.notices.event("backfilled", detail, gap.symbol)

    async def _give_up(self, gaps: SymbolGaps, gap: Gap, why: str) -> None:
        """Report the rest of `gap` as not filled, and stop asking for it."""
        first = max(gap.first, gaps.done_through + 1)
        self._failed(gaps, first, gap.last, why)
        await self._publish(gaps, [], gap.last)

    def _failed(self, gaps: SymbolGaps, first: int, last: int, why: str) -> None:
        reason = f"ids {first}..{last}: {why}"
        self.notices.event("backfill_failed", reason, gaps.symbol)
        self.notices.dead_letter(
            f"{gaps.symbol} trade ids {first}..{last}", f"{gaps.symbol}: back-fill failed: {reason}"
        )
        gaps.failed += last - first + 1

    async def _fill_by_ids(self, gaps: SymbolGaps, gap: Gap) -> None:
        """`historicalTrades` or, for an `@aggTrade` stream, `aggTrades` by id: pages from the
        gap's first id until it is covered."""
        reference = await self.stored.reference_price(gap.symbol)
        from_id = gap.first
        while from_id <= gap.last:

            async def page(first: int = from_id) -> Filled:
                recv_ts = now_ms()
                if self.mode == "trades":
                    trades = await self.rest.historical_trades(gap.symbol, first)
                    return fill_from_trades(
                        gap, first, trades, page_limit=HISTORICAL_LIMIT, recv_ts=recv_ts,
                        reference_price=reference,
                    )  # fmt: skip
                aggregates = await self.rest.agg_trades(gap.symbol, from_id=first)
                return fill_from_aggregate_ids(
                    gap, first, aggregates, page_limit=AGG_LIMIT, recv_ts=recv_ts,
                    reference_price=reference,
                )  # fmt: skip

            filled = await self._ask(gap, page)
            if not filled.ticks and from_id == gap.first and filled.through >= gap.last:
                raise GiveUp(
                    "REST lists none of these ids: older than it serves, or not market trades"
                )
            await self._publish(gaps, filled.ticks, filled.through)
            gaps.unlisted += filled.unlisted_ids
            from_id = filled.through + 1

    async def _fill_from_aggregates(self, gaps: SymbolGaps, gap: Gap) -> None:
        """`aggTrades` for a `@trade` stream without an API key: find the first aggregate that
        reaches the gap by time, then go on by aggregate id until past the gap."""
        reference = await self.stored.reference_price(gap.symbol)
        end_of_time = max(gap.before_ts, gap.after_ts)
        window_start = gap.after_ts if gap.after_ts > 0 else max(0, end_of_time - AGG_WINDOW_MS + 1)
        page: list[AggTrade] = []
        # Find the first page holding an aggregate that reaches the gap.
        while True:
            window_end = min(window_start + AGG_WINDOW_MS - 1, max(end_of_time, window_start))

            async def by_time(start: int = window_start, end: int = window_end) -> list[AggTrade]:
                found = await self.rest.agg_trades(gap.symbol, start_ms=start, end_ms=end)
                check_aggregates(found, start_ms=start, end_ms=end, reference_price=reference)
                return found

            page = await self._ask(gap, by_time)
            while page and all(a.last_id < gap.first for a in page) and len(page) >= AGG_LIMIT:
                page = await self._ask(gap, self._by_id(gap.symbol, page[-1].id + 1, reference))
            if any(a.last_id >= gap.first for a in page):
                break
            if window_end >= end_of_time:
                raise GiveUp("REST lists no aggregate trade for these ids: older than it serves")
            window_start = window_end + 1
        # Fill, page by page.
        done_before = gap.first - 1
        while True:
            reaching = [a for a in page if a.last_id >= gap.first and a.first_id <= gap.last]
            ticks: list[Tick] = []
            for aggregate in reaching:
                try:
                    ticks += await self._aggregate(gaps, gap, aggregate)
                except GiveUp as exc:
                    low = max(aggregate.first_id, gap.first)
                    high = min(aggregate.last_id, gap.last)
                    self._failed(gaps, low, high, f"aggregate {aggregate.id}: {exc}")
            covered_ids = sorted(i for t in ticks for i in range(t.trade_id, t.covers_through + 1))
            past = len(page) < AGG_LIMIT or (page and page[-1].last_id >= gap.last)
            through = gap.last if past else max(gap.first - 1, page[-1].last_id)
            if reaching:
                through = max(through, reaching[-1].last_id)
            unlisted = runs_without(done_before + 1, min(through, gap.last), covered_ids)
            gaps.unlisted += sum(b - a + 1 for a, b in unlisted)
            await self._publish(gaps, ticks, through)
            done_before = through
            if past:
                return
            page = await self._ask(gap, self._by_id(gap.symbol, page[-1].id + 1, reference))

    def _by_id(
        self, symbol: str, from_id: int, reference: float | None
    ) -> Callable[[], Awaitable[list[AggTrade]]]:
        async def ask() -> list[AggTrade]:
            found = await self.rest.agg_trades(symbol, from_id=from_id)
            check_aggregates(found, from_id=from_id, reference_price=reference)
            return found

        return ask

    async def _aggregate(self, gaps: SymbolGaps, gap: Gap, aggregate: AggTrade) -> list[Tick]:
        """The ticks of one aggregate that reaches `gap`, once its other trades are known."""
        first, last = aggregate.first_id, aggregate.last_id
        if gap.first <= first and last <= gap.last:  # all of it missing: nothing to read
            try:
                return aggregate_ticks(
                    gap.symbol, aggregate, [(first, last)], Known(), recv_ts=now_ms()
                )
            except AnswerProblem as exc:
                raise GiveUp(str(exc)) from None
        near_ms = gap.after_ts if first < gap.first else gap.before_ts
        claimed: list[Gap] = []
        deadline = time.monotonic() + EDGE_WAIT_S
        give_up_at = time.monotonic() + EDGE_GIVE_UP_S
        while True:
            known = await self.stored.known(gap.symbol, first, last, near_ms or gap.before_ts)
            waiting = [g for g in gaps.pending if g.last > gaps.done_through]
            missing = _minus(_runs_of(merged([gap, *waiting, *claimed]), first, last), known.ranges)
            try:
                return aggregate_ticks(gap.symbol, aggregate, missing, known, recv_ts=now_ms())
            except NeedIds as exc:
                runs = exc.runs
            except AnswerProblem as exc:
                raise GiveUp(str(exc)) from None
            if all(b < gap.first for _, b in runs):
                raise GiveUp(
                    f"trades {runs[0][0]}..{runs[-1][1]} of aggregate {aggregate.id}, before the "
                    "gap, are no longer in Redis"
                )
            received = self.intake.state(gap.symbol).last_id
            if time.monotonic() >= deadline and runs[-1][1] > received:
                # Recorded like any gap (the publisher writes it no later than a tick above
                # it), so a crash before this page is published cannot forget these ids.
                extra = self.intake.claim(gap.symbol, last, aggregate.time)
                if extra is not None:
                    claimed.append(extra)
                    continue
            if time.monotonic() >= give_up_at:
                raise GiveUp(
                    f"trades {runs[0][0]}..{runs[-1][1]} of aggregate {aggregate.id} were received "
                    "but did not reach Redis in time"
                )
            if await self._sleep(EDGE_POLL_S):
                raise Stopping

    # Redis.

    async def _publish(self, gaps: SymbolGaps, ticks: Sequence[Tick], through: int) -> None:
        """Append `ticks` and mark every id up to `through` done, atomically; retried until
        Redis takes it."""
        symbol = gaps.symbol
        delay = 0.05
        while True:
            try:
                added, _ = await self.redis.fcall(
                    keys.PUBLISH_BACKFILL, 2, keys.backfill(symbol), keys.gaps(symbol),
                    self.maxlen, encode_backfill(ticks), str(through), str(through + 1),
                )  # fmt: skip
                break
            except ResponseError as exc:
                if "function not found" in str(exc).lower():
                    await self.redis.function_load(LIBRARY, replace=True)
                    continue
                # OOM, BUSY, a read-only replica: the page waits until Redis takes it.
                log.warning("redis refused a back-fill page", extra={"error": str(exc)})
                if await self._sleep(delay):
                    raise Stopping from None
                delay = min(delay * 2, RETRY_MAX_S)
            except UNAVAILABLE:
                if await self._sleep(delay):
                    raise Stopping from None
                delay = min(delay * 2, 1.0)
        gaps.ticks += int(added)
        gaps.done_through = max(gaps.done_through, through)

    # Asking REST.

    async def _ask(self, gap: Gap, request: Callable[[], Awaitable[T]]) -> T:
        """`request()` until it gives an answer that fits; `GiveUp` when it cannot."""
        bad, delay, reported = 0, RETRY_FIRST_S, False
        while True:
            try:
                return await request()
            except RestBadAnswer as exc:
                bad += 1
                self.notices.dead_letter(exc.body, f"{gap.symbol}: {exc}")
                failure: Exception = exc
            except AnswerProblem as exc:
                bad += 1
                self.notices.dead_letter(gap.describe(), f"{gap.symbol}: {exc}")
                failure = exc
            except RestRefused as exc:
                raise GiveUp(f"REST refused: {exc}") from None
            except RestFailure as exc:
                failure = exc
                if not reported:
                    reported = True
                    self.notices.event(
                        "backfill_waiting", f"{gap.describe()}: {exc}; asking again", gap.symbol
                    )
            if bad >= BAD_ANSWERS:
                raise GiveUp(f"{bad} answers that do not fit, the last: {failure}")
            log.warning(
                "back-fill request failed", extra={"symbol": gap.symbol, "error": str(failure)}
            )
            if await self._sleep(delay):
                raise Stopping
            delay = min(delay * 2, RETRY_MAX_S)

    async def _sleep(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        return self.stop.is_set()


__all__ = ["BACKFILL_FIELDS", "Backfiller", "GiveUp", "SymbolGaps"]
