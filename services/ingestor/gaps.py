"""A gap in a symbol's trade ids, and how it is kept in `gaps:<SYMBOL>` until back-filled (pure).

Binance numbers each symbol's trades one by one, so a jump in ids is missing data. The intake
opens a gap when it sees one (or when REST shows trades the socket never gave); the publisher
records it in Redis in the same call that publishes the tick after it, so a crash never forgets
a gap whose later ticks are already out; the back-filler removes it once REST has filled it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Gap:
    """Trade ids `first..last` of `symbol` never received."""

    symbol: str
    first: int
    last: int
    after_ts: int
    """Trade time of the trade before the gap (0 when unknown)."""
    before_ts: int
    """Trade time of the trade after it, or of the exchange's newest trade for a gap that
    only REST revealed."""

    @property
    def ids(self) -> int:
        return self.last - self.first + 1

    def describe(self) -> str:
        """`missing trade ids 11..14 (4 trades)`, as the `gap` event says."""
        return f"missing trade ids {self.first}..{self.last} ({self.ids} trades)"

    @property
    def field(self) -> str:
        return str(self.first)

    @property
    def value(self) -> str:
        return f"{self.last} {self.after_ts} {self.before_ts}"

    @classmethod
    def decode(cls, symbol: str, field: str, value: str) -> Gap:
        """A gap as `gaps:<symbol>` holds it; `ValueError` for anything else."""
        parts = value.split()
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in [field, *parts]):
            raise ValueError(f"not a gap record: {field!r} -> {value!r}")
        first, (last, after_ts, before_ts) = int(field), (int(p) for p in parts)
        if last < first:
            raise ValueError(f"gap record ends before it starts: {field!r} -> {value!r}")
        return cls(symbol, first, last, after_ts, before_ts)

    def starting_at(self, first: int) -> Gap:
        """What is left of the gap once the ids before `first` are filled."""
        return Gap(self.symbol, first, self.last, self.after_ts, self.before_ts)


def merged(gaps: Iterable[Gap]) -> list[Gap]:
    """Gaps of one symbol in id order, overlapping or touching ones joined (a gap recorded
    before a crash and the gap a restart finds may cover the same ids)."""
    result: list[Gap] = []
    for gap in sorted(gaps, key=lambda g: (g.first, g.last)):
        if result and gap.first <= result[-1].last + 1:
            previous = result[-1]
            if gap.last > previous.last:
                result[-1] = Gap(
                    gap.symbol,
                    previous.first,
                    gap.last,
                    previous.after_ts or gap.after_ts,
                    gap.before_ts,
                )
            continue
        result.append(gap)
    return result
