"""The event clock that decides when bars close, in live use and in replay at any speed.

Event time is the newest trade time seen on any symbol. A bar closes once event time has passed
its end plus the allowed lateness (`BAR_LATENESS_MS`). Two refinements:

- A stream read in full (a batch of `count` entries: more may be waiting) holds the clock at its
  last trade time, so a backlog on one symbol never makes another symbol's ticks late.
- When no trade at all has arrived for the lateness in wall time, event time is taken to move on
  at the pace it has been moving relative to wall time, at most 1x: live that is wall time, so
  quiet markets still close bars; a replay slower than live is not overtaken, and a fast replay
  that has ended closes its last bars at live pace rather than racing through empty ones.
"""

from __future__ import annotations

from dataclasses import dataclass

RATE_SPAN_MS = 10_000.0
"""Wall time over which the pace of event time is measured."""
MIN_RATE, MAX_RATE = 1e-3, 1.0


@dataclass(slots=True)
class EventClock:
    lateness_ms: int
    high: int | None = None
    """Newest trade time seen (epoch ms)."""
    last_wall_ms: float = 0.0
    """Wall time (monotonic ms) when the newest batch of trades arrived."""
    rate: float = 1.0
    """Event ms per wall ms, as last measured."""
    _anchor_wall: float | None = None
    _anchor_event: int = 0

    def observe(self, newest_ts: int, wall_ms: float) -> None:
        """Trades up to `newest_ts` arrived at `wall_ms`."""
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
        now = self.now(wall_ms, held_at)
        return None if now is None else now - self.lateness_ms
