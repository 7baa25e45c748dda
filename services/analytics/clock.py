"""The event clock that decides when bars close, in live use and in replay at any speed.

Event time is the newest trade time seen on any symbol. A bar may close once event time has
passed its end plus the allowed lateness (`BAR_LATENESS_MS`), and once every live symbol (one that
delivered within `LIVE_MS` of wall time) has passed its end: so while one connection reconnects
or lags, or one symbol's stream runs ahead of another's in a fast replay, the slow symbol's
trades are not made late. A bar is never held longer than `BAR_MAX_WAIT_MS` of wall time after
the fastest symbol passed its end plus the lateness, so an illiquid or stuck symbol cannot hold
the others. Two refinements:

- A stream read in full (a batch of `count` entries: more may be waiting) holds the clock at its
  last trade time, so a backlog on one symbol never makes another symbol's ticks late (the wait
  bound does not apply: those ticks are already in Redis).
- When no trade at all has arrived for the lateness in wall time, event time is taken to move on
  at the pace it has been moving relative to wall time, at most 1x: live that is wall time, so
  quiet markets still close bars; a replay slower than live is not overtaken, and a fast replay
  that has ended closes its last bars at live pace rather than racing through empty ones.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RATE_SPAN_MS = 10_000.0
"""Wall time over which the pace of event time is measured."""
MIN_RATE, MAX_RATE = 1e-3, 1.0
LIVE_MS = 5_000.0
"""A symbol that delivered within this much wall time is live: bars wait for it (within
`max_wait_ms`). One silent for longer, a quiet market, holds nothing."""


@dataclass(slots=True)
class EventClock:
    lateness_ms: int
    max_wait_ms: int = 2_000
    high: int | None = None
    """Newest trade time seen (epoch ms)."""
    last_wall_ms: float = 0.0
    """Wall time (monotonic ms) when the newest batch of trades arrived."""
    rate: float = 1.0
    """Event ms per wall ms, as last measured."""
    _anchor_wall: float | None = None
    _anchor_event: int = 0
    symbols: dict[int, tuple[int, float]] = field(default_factory=dict)
    """Per symbol: its newest trade time, and the wall time it was seen."""
    _reached: deque[tuple[float, int]] = field(default_factory=deque)
    """(wall time, horizon the fastest symbol allowed then), rising: the wait bound's memory."""

    def observe(self, newest_ts: int, wall_ms: float, symbol: int | None = None) -> None:
        """Trades up to `newest_ts` (of `symbol`, when given) arrived at `wall_ms`."""
        if symbol is not None:
            known = self.symbols.get(symbol)
            self.symbols[symbol] = (max(newest_ts, known[0]) if known else newest_ts, wall_ms)
        if self.high is None or newest_ts > self.high:
            self.high = newest_ts
        self.last_wall_ms = wall_ms
        if self._anchor_wall is None:
            self._anchor_wall, self._anchor_event = wall_ms, self.high
        elif wall_ms - self._anchor_wall >= RATE_SPAN_MS:
            measured = (self.high - self._anchor_event) / (wall_ms - self._anchor_wall)
            self.rate = min(max(measured, MIN_RATE), MAX_RATE)
            self._anchor_wall, self._anchor_event = wall_ms, self.high

    def resume(self, event_ts: int | None, wall_ms: float) -> None:
        """Start (or restart) from `event_ts` at `wall_ms`, e.g. after the state rebuild."""
        if event_ts is not None and (self.high is None or event_ts > self.high):
            self.high = event_ts
        self.last_wall_ms = wall_ms
        self._anchor_wall = None

    def now(self, wall_ms: float, held_at: int | None = None) -> int | None:
        """Event time at `wall_ms`; `held_at` is the last trade time of streams read in full."""
        if self.high is None:
            return None
        if held_at is not None:
            return min(self.high, held_at)
        idle = wall_ms - self.last_wall_ms
        if idle >= self.lateness_ms:
            return self.high + int(idle * self.rate)
        return self.high

    def horizon(self, wall_ms: float, held_at: int | None = None) -> int | None:
        """Bars ending at or before this time can close."""
        now = self.now(wall_ms)
        if now is None:
            return None
        fastest = now - self.lateness_ms
        reached = self._reached
        if not reached or fastest > reached[-1][1]:
            reached.append((wall_ms, fastest))
        cutoff = wall_ms - self.max_wait_ms
        while len(reached) > 1 and reached[1][0] <= cutoff:
            reached.popleft()
        horizon = fastest
        live = [ts for ts, seen in self.symbols.values() if wall_ms - seen <= LIVE_MS]
        if live:
            horizon = min(horizon, min(live))
            if reached[0][0] <= cutoff:
                horizon = max(horizon, reached[0][1])
        if held_at is not None:
            horizon = min(horizon, held_at - self.lateness_ms)
        return horizon
