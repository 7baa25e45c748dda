"""Which market a symbol's data comes from, so that synthetic ticks never mix with a live or
replayed symbol of the same name in one Redis database or one SQLite file (no I/O).

Real trades (`SOURCE=binance` or `replay`) are the `exchange` market; `SOURCE=synthetic` is the
`synthetic` one. The ingestor records each symbol's market in Redis (`keys.MARKETS`) and the writer
in SQLite (`market_kinds`) the first time it serves it, and each refuses to start on a symbol
recorded with the other market, with the reason and the way out in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from shared.config import Source

MarketKind = Literal["exchange", "synthetic"]


def market_kind(source: Source) -> MarketKind:
    return "synthetic" if source == "synthetic" else "exchange"


def mixed_refusal(
    recorded: Mapping[str, str | None], kind: MarketKind, symbols: Sequence[str], where: str
) -> str | None:
    """Why this source may not add to `where` (None when it may): the symbols it holds from the
    other market."""
    other = [symbol for symbol in symbols if recorded.get(symbol) not in (None, kind)]
    if not other:
        return None
    held = "synthetic" if kind == "exchange" else "exchange (live or replayed)"
    return (
        f"{where} holds {held} data of {', '.join(other)}; {kind} ticks would mix with it: "
        "point REDIS_URL and SQLITE_PATH at another database (make demo-market uses its own)"
    )
