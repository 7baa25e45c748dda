"""The recorded Binance trades in sample_data/, loaded for tests (see sample_data/README.md)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

import orjson

from tests.support import REPO

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


def market_trades() -> tuple[RecordedTrade, ...]:
    """The real trades: the rows with a price above zero."""
    return tuple(row for row in recorded_rows() if Decimal(row.price) > 0)
