"""The exchange's truth for tests: every trade of every symbol, as Binance numbers and aggregates
them, so that the local WebSocket and REST servers serve the same trades and a test can compare
SQLite with the truth, trade id by trade id.

Trade ids count up by one per symbol, non-market prints (`X` = `NA`, `INSURANCE_FUND`, `ADL`)
included. An aggregate trade (`@aggTrade`, `GET /fapi/v1/aggTrades`) is a run of consecutive
market trades of one taker order: same time, price and side; a non-market print ends a run.
Aggregate ids count up by one per symbol too. An aggregate is the ingestor's own `AggTrade`
record, rendered in Binance's JSON by `agg_rest` and `agg_event`. Storage is compact (arrays), so
a feed can keep millions of trades.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from services.ingestor.rest_records import AggTrade

EXECUTIONS = ("MARKET", "NA", "INSURANCE_FUND", "ADL")


@dataclass(frozen=True, slots=True)
class Trade:
    id: int
    price: str
    qty: str
    time: int
    buyer_maker: bool
    execution: str = "MARKET"

    @property
    def market(self) -> bool:
        return self.execution == "MARKET"

    def rest(self) -> dict[str, object]:
        """As `GET /fapi/v1/trades` and `historicalTrades` list it."""
        quote = format(Decimal(self.price) * Decimal(self.qty), "f")
        return {
            "id": self.id, "price": self.price, "qty": self.qty, "quoteQty": quote,
            "time": self.time, "isBuyerMaker": self.buyer_maker,
        }  # fmt: skip

    def event(self, symbol: str) -> dict[str, object]:
        """The raw `@trade` event, field order included."""
        return {
            "e": "trade", "E": self.time + 3, "T": self.time, "s": symbol, "t": self.id,
            "p": self.price, "q": self.qty, "X": self.execution, "m": self.buyer_maker,
        }  # fmt: skip


def agg_rest(a: AggTrade) -> dict[str, object]:
    """An aggregate as `GET /fapi/v1/aggTrades` lists it: what `parse_agg_trades` reads back."""
    return {
        "a": a.id, "p": a.price, "q": a.qty, "f": a.first_id, "l": a.last_id, "T": a.time,
        "m": a.buyer_maker,
    }  # fmt: skip


def agg_event(a: AggTrade, symbol: str) -> dict[str, object]:
    """An aggregate as the raw `@aggTrade` event."""
    return {
        "e": "aggTrade", "E": a.time + 3, "a": a.id, "s": symbol, "p": a.price, "q": a.qty,
        "f": a.first_id, "l": a.last_id, "T": a.time, "m": a.buyer_maker,
    }  # fmt: skip


@dataclass
class Book:
    """One symbol's trades, ids `first_id ...` in order, and their aggregates."""

    first_id: int
    first_agg_id: int
    prices: list[str] = field(default_factory=list)
    qtys: list[str] = field(default_factory=list)
    times: array[int] = field(default_factory=lambda: array("q"))
    makers: bytearray = field(default_factory=bytearray)
    executions: bytearray = field(default_factory=bytearray)
    agg_first: array[int] = field(default_factory=lambda: array("q"))
    """Per aggregate, the index (not id) of its first trade."""
    agg_last: array[int] = field(default_factory=lambda: array("q"))
    agg_times: array[int] = field(default_factory=lambda: array("q"))

    def __len__(self) -> int:
        return len(self.times)

    @property
    def next_id(self) -> int:
        return self.first_id + len(self)

    def add(self, price: str, qty: str, time: int, buyer_maker: bool, execution: str) -> Trade:
        if self.times and time < self.times[-1]:
            raise ValueError(f"trade time {time} before the previous {self.times[-1]}")
        index = len(self)
        self.prices.append(price)
        self.qtys.append(qty)
        self.times.append(time)
        self.makers.append(buyer_maker)
        self.executions.append(EXECUTIONS.index(execution))
        if execution == "MARKET":
            last = self.agg_last[-1] if self.agg_last else -2
            if last == index - 1 and self._same_order(last, index):
                self.agg_last[-1] = index
            else:
                self.agg_first.append(index)
                self.agg_last.append(index)
                self.agg_times.append(time)
        return self.trade(index)

    def _same_order(self, a: int, b: int) -> bool:
        return (
            self.times[a] == self.times[b]
            and self.prices[a] == self.prices[b]
            and self.makers[a] == self.makers[b]
        )

    def trade(self, index: int) -> Trade:
        return Trade(
            self.first_id + index, self.prices[index], self.qtys[index], self.times[index],
            bool(self.makers[index]), EXECUTIONS[self.executions[index]],
        )  # fmt: skip

    def trades(self, first_id: int, last_id: int) -> Iterator[Trade]:
        low = max(0, first_id - self.first_id)
        high = min(len(self), last_id - self.first_id + 1)
        for index in range(low, high):
            yield self.trade(index)

    def aggregate(self, k: int) -> AggTrade:
        first, last = self.agg_first[k], self.agg_last[k]
        qty = sum((Decimal(self.qtys[i]) for i in range(first, last + 1)), Decimal(0))
        return AggTrade(
            self.first_agg_id + k, self.prices[first], format(qty.normalize(), "f"),
            self.first_id + first, self.first_id + last, self.times[first],
            bool(self.makers[first]),
        )  # fmt: skip

    @property
    def aggregates(self) -> int:
        return len(self.agg_first)

    def aggregates_from_id(self, agg_id: int) -> int:
        """Index of the first aggregate with id `agg_id` or above."""
        return max(0, agg_id - self.first_agg_id)

    def aggregates_from_time(self, time: int) -> int:
        return bisect_left(self.agg_times, time)

    def aggregates_until_time(self, time: int) -> int:
        """Index past the last aggregate at or before `time`."""
        return bisect_right(self.agg_times, time)

    def aggregate_of(self, trade_id: int) -> int | None:
        """Index of the aggregate holding trade `trade_id`, None for a non-market print."""
        index = trade_id - self.first_id
        k = bisect_right(self.agg_first, index) - 1
        if k >= 0 and self.agg_first[k] <= index <= self.agg_last[k]:
            return k
        return None


SYMBOL_ID_STEP = 1_000_000_000
"""Each new symbol's ids start this far above the previous one's, as real symbols' ids differ."""


class Exchange:
    """Every symbol's book."""

    def __init__(self, first_id: int = 6_905_373_851, first_agg_id: int = 2_950_000_001) -> None:
        self.first_id = first_id
        self.first_agg_id = first_agg_id
        self.books: dict[str, Book] = {}

    def book(self, symbol: str) -> Book:
        if symbol not in self.books:
            step = SYMBOL_ID_STEP * len(self.books)
            self.books[symbol] = Book(self.first_id + step, self.first_agg_id + step)
        return self.books[symbol]

    def trade(
        self, symbol: str, price: str, qty: str, time: int, *, buyer_maker: bool = False,
        execution: str = "MARKET",
    ) -> Trade:  # fmt: skip
        """Add the next trade of `symbol`."""
        return self.book(symbol).add(price, qty, time, buyer_maker, execution)

    def trades(self, symbol: str) -> list[Trade]:
        book = self.book(symbol)
        return list(book.trades(book.first_id, book.next_id - 1))

    def market_ids(self, symbol: str) -> list[int]:
        return [t.id for t in self.trades(symbol) if t.market]

    def aggregates(self, symbol: str) -> list[AggTrade]:
        book = self.book(symbol)
        return [book.aggregate(k) for k in range(book.aggregates)]

    def volume_per_second(self, symbol: str) -> dict[int, Decimal]:
        """Summed market quantity per second of trade time: the truth to compare with."""
        volume: dict[int, Decimal] = {}
        for trade in self.trades(symbol):
            if trade.market:
                second = trade.time // 1000 * 1000
                volume[second] = volume.get(second, Decimal(0)) + Decimal(trade.qty)
        return volume
