"""The recorded Binance trades in sample_data/ (see sample_data/README.md), as rows and as the
ticks the ingestor publishes for them: the one loader tests and benchmarks use."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

import orjson

from shared.schemas import Side, Tick
from testkit.processes import REPO

RECORDED = REPO / "sample_data/binance-futures-btcusdt-ethusdt-2025-12-16.ndjson.gz"


@dataclass(frozen=True)
class RecordedTrade:
    symbol: str
    ts: int
    price: str
    size: str


def _decimal_text(number: float | int) -> str:
    return format(Decimal(str(number)), "f")


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def _read() -> Iterator[RecordedTrade]:
    with gzip.open(RECORDED, "rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            yield RecordedTrade(
                row["symbol"], _epoch_ms(row["ts"]), _decimal_text(row["price"]),
                _decimal_text(row["size"]),
            )  # fmt: skip


@cache
def recorded_rows() -> tuple[RecordedTrade, ...]:
    """Every row of the file, in file order, `NA` placeholder prints (price 0) included."""
    return tuple(_read())


@cache
def market_trades() -> tuple[RecordedTrade, ...]:
    """The real trades: the rows with a price above zero."""
    return tuple(row for row in recorded_rows() if Decimal(row.price) > 0)


FIRST_TRADE_ID = 6_905_373_851
"""The recording's first trade id (per symbol, ids count up by one from it)."""


def recorded_ticks(count: int | None = None) -> tuple[Tick, ...]:
    """The recorded trades as the ingestor publishes them, in time order: trade ids consecutive
    per symbol from `FIRST_TRADE_ID`, every third a sell, received 7 ms after the trade. With
    `count` beyond the recording, it repeats (each round shifted after the previous one)."""
    total = len(market_trades()) if count is None else count
    if total <= CACHED_TICKS:
        return _recorded_ticks(CACHED_TICKS)[:total]
    return _recorded_ticks(total)


CACHED_TICKS = 200_000


@cache
def _recorded_ticks(count: int) -> tuple[Tick, ...]:
    trades = market_trades()
    span = trades[-1].ts - trades[0].ts + 1_000
    next_id: dict[str, int] = {}
    ticks: list[Tick] = []
    round_ = 0
    while len(ticks) < count:
        for n, trade in enumerate(trades):
            if len(ticks) == count:
                break
            trade_id = next_id.get(trade.symbol, FIRST_TRADE_ID)
            next_id[trade.symbol] = trade_id + 1
            ts = trade.ts + round_ * span
            side: Side = "sell" if n % 3 == 0 else "buy"
            ticks.append(Tick(ts, trade.symbol, trade.price, trade.size, trade_id, side, ts + 7))
        round_ += 1
    return tuple(ticks)
