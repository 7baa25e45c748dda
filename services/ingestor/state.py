"""Per-symbol state of the ingestor: the trade-id sequence and the counters shown in health."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Sequence(Enum):
    """Where a trade id stands against the last one accepted for its symbol."""

    FIRST = "first"
    NEXT = "next"
    GAP = "gap"
    OLD = "old"


def place(last_id: int, trade_id: int) -> Sequence:
    """`NEXT` for `last_id + 1`, `GAP` past it, `OLD` for a repeated or older id.

    `last_id` is -1 before the first trade, which is accepted whatever its id.
    """
    if last_id < 0:
        return Sequence.FIRST
    if trade_id == last_id + 1:
        return Sequence.NEXT
    return Sequence.GAP if trade_id > last_id else Sequence.OLD


@dataclass(slots=True)
class SymbolState:
    """Everything the ingestor counts for one symbol; plain attributes, cheap to bump."""

    symbol: str
    last_id: int = -1
    ticks: int = 0
    last_ts: int = 0
    gaps: int = 0
    missing: int = 0
    dropped: int = 0
    non_market: int = 0
    deadlettered: int = 0
    published: int = 0
    duplicates: int = 0
    overflowed: int = 0
    connected: bool = False
    connects: int = 0
    route: str = ""
    """The route that delivers (`/public`, `unrouted`, ...), once one has."""
    last_price: str = ""

    @property
    def queued(self) -> int:
        """Ticks accepted and neither published, skipped by Redis as already there, nor lost."""
        return self.ticks - self.published - self.duplicates - self.overflowed

    def health_fields(self) -> dict[str, int | str]:
        """The counters as `health:ingestor` fields, `<counter>:<SYMBOL>`."""
        counters: dict[str, int | str] = {
            "connected": int(self.connected),
            "ticks": self.ticks,
            "last_tick": self.last_ts,
            "last_trade_id": self.last_id,
            "published": self.published,
            "queued": self.queued,
            "gaps": self.gaps,
            "missing": self.missing,
            "dropped": self.dropped,
            "duplicates": self.duplicates,
            "deadlettered": self.deadlettered,
            "non_market": self.non_market,
            "overflowed": self.overflowed,
            "connects": self.connects,
            "route": self.route,
        }
        return {f"{name}:{self.symbol}": value for name, value in counters.items()}
