"""Where every source hands its parsed frames: sequence checks, counters, the queue, rejects.

The same path for live, replayed and synthetic trades, so they are treated alike:
- a tick whose id is the last one plus one is queued;
- a jump is a gap: counted, reported to `events` with the missing range, and the tick queued,
  unless it skips more ids than the trade time elapsed allows (a corrupt id): dead letter;
- a repeated or older id is dropped and counted;
- a non-market print is counted (and moves the sequence on when it carries the next id);
- a frame that is not a well-formed trade goes to the dead letters with the reason.

`Intake` is the one writer of every `SymbolState`: sources, the publisher and the service
report what happened (a connection opened, a batch published, a sequence resumed) and it
counts; everyone else only reads `state(symbol)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from services.ingestor.binance import NonMarketPrint, TickRow
from services.ingestor.gaps import Gap
from services.ingestor.notices import Notices
from services.ingestor.state import Sequence, SymbolState, place
from services.ingestor.tickqueue import TickQueue


class Intake:
    def __init__(
        self,
        symbols: Iterable[str],
        queue_size: int,
        notices: Notices,
        *,
        record_gaps: bool = False,
    ) -> None:
        self._states: dict[str, SymbolState] = {s: SymbolState(s) for s in symbols}
        self.queue = TickQueue(queue_size, self._overflowed)
        self.notices = notices
        self.deadlettered = 0
        self.overflowing = False
        self.record_gaps = record_gaps
        """Live trades: gaps are recorded in Redis and back-filled from REST (a replayed or
        synthetic source has nothing to fetch them from)."""
        self._opened: list[Gap] = []
        self._lost: dict[str, Lost] = {}

    def state(self, symbol: str) -> SymbolState:
        """The symbol's counters, to read (only `Intake` writes them)."""
        return self._states[symbol]

    @property
    def states(self) -> tuple[SymbolState, ...]:
        return tuple(self._states.values())

    def connection_opened(self, symbol: str) -> None:
        state = self._states[symbol]
        state.connected = True
        state.connects += 1

    def connection_closed(self, symbol: str) -> None:
        self._states[symbol].connected = False

    def source_flowing(self, flowing: bool) -> None:
        """An in-process source (replay, synthetic) started or ended: every symbol is
        connected while it runs, with no connection to count."""
        for state in self._states.values():
            state.connected = flowing

    def route_delivering(self, symbol: str, route: str) -> None:
        self._states[symbol].route = route

    def published(self, symbol: str, added: int, duplicates: int) -> None:
        """A batch reached Redis: `added` new entries, `duplicates` already there."""
        state = self._states[symbol]
        state.published += added
        state.duplicates += duplicates

    def resume(self, symbol: str, trade_id: int, ts: int) -> None:
        """Continue the sequence after a trade stored by an earlier run."""
        state = self._states[symbol]
        state.last_id, state.last_ts = trade_id, ts

    def tick(self, row: TickRow) -> None:
        """A live tick: queued at once (the oldest waiting tick is dropped if the queue is full)."""
        if self._admit(row):
            self.queue.put_nowait(row)

    async def tick_waiting(self, row: TickRow) -> None:
        """A replayed or synthetic tick: waits for room in the queue rather than drop any."""
        if self._admit(row):
            await self.queue.put(row)

    def _admit(self, row: TickRow) -> bool:
        """Check the tick's id against its symbol's sequence and count it; False to drop it."""
        state = self._states[row.symbol]
        trade_id = row.trade_id
        if trade_id != state.last_id + 1 and not self._out_of_sequence(state, row):
            return False
        state.last_id = trade_id
        state.ticks += 1
        state.last_ts = row.ts
        state.last_price = row.price
        return True

    def non_market(self, print_: NonMarketPrint) -> None:
        state = self._states[print_.symbol]
        state.non_market += 1
        if print_.trade_id == state.last_id + 1:
            state.last_id = print_.trade_id

    def reject(self, raw: bytes | str, reason: str, symbol: str = "") -> None:
        """A frame that is not a well-formed trade: to the dead letters, counted."""
        self.deadlettered += 1
        if symbol in self._states:
            self._states[symbol].deadlettered += 1
        self.notices.dead_letter(raw, f"{symbol}: {reason}" if symbol else reason)

    def _out_of_sequence(self, state: SymbolState, row: TickRow) -> bool:
        """True to accept a tick whose id is not the next one (the first, or after a gap)."""
        trade_id = row.trade_id
        where = place(state.last_id, trade_id)
        if where is Sequence.OLD:
            state.dropped += 1
            return False
        if where is Sequence.GAP and implausible_jump(state, trade_id, row.ts):
            self.reject(
                orjson.dumps(tuple(row)),
                f"trade id {trade_id} is {trade_id - state.last_id} past the last one "
                f"({state.last_id}) within {max(0, row.ts - state.last_ts)} ms of trade time: "
                "refused as corrupt",
                state.symbol,
            )
            return False
        if where is Sequence.GAP:
            self._open(Gap(state.symbol, state.last_id + 1, trade_id - 1, state.last_ts, row.ts))
        return True

    def _open(self, gap: Gap, how: str = "", *, record: bool = True) -> None:
        state = self._states[gap.symbol]
        state.gaps += 1
        state.missing += gap.ids
        self.notices.event("gap", f"{gap.describe()}{how}", gap.symbol)
        if record and self.record_gaps:
            self._opened.append(gap)

    def claim(self, symbol: str, through_id: int, ts: int, *, record: bool = True) -> Gap | None:
        """Trades up to `through_id` exist (REST says so) and the socket has not given them:
        open the gap after the last id received, and move the sequence past it, so those ids
        are back-filled rather than reported again. `record=False`: the caller fills the gap
        itself (it is not recorded for the back-filler). The gap, or None when nothing was
        missing (or nothing was received yet, so there is no "after")."""
        state = self._states[symbol]
        if state.last_id < 0 or through_id <= state.last_id:
            return None
        if implausible_jump(state, through_id, ts):
            self.reject(
                f"REST trade {through_id} at {ts}",
                f"REST says trade id {through_id} exists, {through_id - state.last_id} past the "
                f"last one ({state.last_id}) within {max(0, ts - state.last_ts)} ms of trade "
                "time: refused as corrupt",
                symbol,
            )
            return None
        gap = Gap(symbol, state.last_id + 1, through_id, state.last_ts, ts)
        state.last_id = through_id
        state.last_ts = max(state.last_ts, ts)
        self._open(gap, ", found by REST", record=record)
        if record:
            self.queue.nudge()
        return gap

    def take_opened(self) -> tuple[Gap, ...]:
        """The gaps opened since the last call (for the publisher to record)."""
        if not self._opened:
            return ()
        opened, self._opened = tuple(self._opened), []
        return opened

    def _overflowed(self, row: TickRow) -> None:
        symbol, trade_id = row.symbol, row.trade_id
        self._states[symbol].overflowed += 1
        was = self._lost.get(symbol, Lost(0, trade_id, trade_id))
        self._lost[symbol] = Lost(was.count + 1, min(was.first, trade_id), max(was.last, trade_id))
        if not self.overflowing:
            self.overflowing = True
            self.notices.event(
                "overflow",
                f"tick queue full ({self.queue.capacity} ticks): dropping the oldest "
                "until Redis takes them again",
            )

    def check_overflow_over(self) -> None:
        """After a publish: once the queue is back under half full, report what was lost."""
        if not self.overflowing or len(self.queue) > self.queue.capacity // 2:
            return
        self.overflowing = False
        lost = self._lost
        self._lost = {}
        self.notices.event("overflow", f"overflow over: {describe_lost(lost)}")


MAX_TRADES_PER_MS = 100
"""No market trades faster than this (100,000 a second on one symbol)."""
JUMP_SLACK = 1_000_000


def implausible_jump(state: SymbolState, trade_id: int, ts: int) -> bool:
    """More ids skipped than the trade time elapsed since the last tick allows: a corrupt id
    that, accepted, would make every real trade after it look old and be dropped."""
    if state.last_ts <= 0:
        return False
    elapsed_ms = max(0, ts - state.last_ts)
    return trade_id - state.last_id > JUMP_SLACK + MAX_TRADES_PER_MS * elapsed_ms


@dataclass(frozen=True)
class Lost:
    """The ticks of one symbol an overflow dropped: how many, and their id range."""

    count: int
    first: int
    last: int


def describe_lost(lost: Mapping[str, Lost]) -> str:
    """`lost 1200 ticks: BTCUSDT 700 (ids 5..900), ETHUSDT 500 (ids 7..600)`."""
    total = sum(one.count for one in lost.values())
    parts = ", ".join(
        f"{symbol} {one.count} (ids {one.first}..{one.last})" for symbol, one in lost.items()
    )
    return f"lost {total} ticks: {parts}"
