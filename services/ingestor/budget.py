"""The REST weight budget: at most `BINANCE_REST_WEIGHT_PER_MIN` in any 60 s, and pauses the
exchange asks for (429: back off; 418: banned until `Retry-After`). Pure: times are passed in.

Binance counts weight per IP per minute (2,400 on USD-M). The ingestor keeps its own share
well below that, so a burst of back-fills never gets the machine's IP banned, and never
retries faster than the budget allows: a retry is a request like any other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 60.0
THROTTLE_FIRST_S, THROTTLE_MAX_S = 1.0, 60.0
"""Back-off after a 429 without `Retry-After`, doubled on each one in a row."""
BAN_DEFAULT_S = 120.0
"""A 418 without `Retry-After`: how long to stop asking."""


@dataclass
class WeightBudget:
    per_min: int
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    paused_until: float = 0.0
    throttled_in_a_row: int = 0

    def used(self, now: float) -> int:
        """Weight spent in the last `WINDOW_S`."""
        self._expire(now)
        return sum(weight for _, weight in self.spent)

    def delay(self, weight: int, now: float) -> float:
        """Seconds to wait before a request of `weight` may go (0: now)."""
        if now < self.paused_until:
            return self.paused_until - now
        self._expire(now)
        excess = sum(w for _, w in self.spent) + weight - self.per_min
        if excess <= 0:
            return 0.0
        for at, spent in self.spent:
            excess -= spent
            if excess <= 0:
                return float(at + WINDOW_S - now)
        return WINDOW_S

    def spend(self, weight: int, now: float) -> None:
        self.spent.append((now, weight))

    def succeeded(self) -> None:
        self.throttled_in_a_row = 0

    def throttled(self, now: float, retry_after_s: float | None) -> float:
        """A 429: pause for `Retry-After`, or a back-off doubling with each 429 in a row; the
        pause in seconds."""
        backoff = min(THROTTLE_FIRST_S * 2.0**self.throttled_in_a_row, THROTTLE_MAX_S)
        self.throttled_in_a_row += 1
        pause = max(backoff, retry_after_s or 0.0)
        self.paused_until = max(self.paused_until, now + pause)
        return pause

    def banned(self, now: float, retry_after_s: float | None) -> float:
        """A 418: no request at all until `Retry-After` has passed; the pause in seconds."""
        pause = retry_after_s if retry_after_s is not None else BAN_DEFAULT_S
        self.paused_until = max(self.paused_until, now + pause)
        return pause

    def _expire(self, now: float) -> None:
        spent = self.spent
        while spent and spent[0][0] <= now - WINDOW_S:
            spent.popleft()
