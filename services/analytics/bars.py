"""Streaming bars: ticks into OHLCV/VWAP bars of every timeframe, closed by event time.

A tick at `ts` belongs to the bar starting at `floor(ts / tf) * tf`. Ticks update only the finest
timeframe; when a finest bar closes it is rolled into the open bars of the coarser timeframes
(every timeframe is a whole number of finest bars, `shared.config` checks it), so a tick costs
one update whatever the number of timeframes.

Bars close together for all symbols, interval by interval, when the event clock (`clock.py`) has
passed their end plus the allowed lateness. A symbol without trades in an interval gets a bar at
its previous close with volume 0, so the series of all symbols stay aligned; a symbol that never
traded yet gets nothing. A tick for a bar already closed is late: counted, not merged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from shared.config import timeframe_ms
from shared.schemas import Bar


@dataclass(slots=True)
class BarAccumulator:
    """One bar being built: OHLC, volume, notional (price * size summed) and trade count."""

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    notional: float
    trades: int
    rolls: bool = True
    """Whether closing it folds it into the coarser timeframes (history seeded into every
    timeframe at start does not, it is already there)."""

    @classmethod
    def first(cls, start: int, price: float, size: float) -> BarAccumulator:
        return cls(start, price, price, price, price, size, price * size, 1)

    def add(self, price: float, size: float) -> None:
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.notional += price * size
        self.trades += 1

    def merge(self, later: BarAccumulator) -> None:
        """Fold in a bar of the same interval made of later trades."""
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close
        self.volume += later.volume
        self.notional += later.notional
        self.trades += later.trades

    def copy(self, start: int) -> BarAccumulator:
        return BarAccumulator(
            start, self.open, self.high, self.low, self.close, self.volume, self.notional,
            self.trades,
        )  # fmt: skip

    def to_bar(self) -> Bar:
        vwap = self.notional / self.volume if self.volume > 0 else self.close
        return Bar(
            start=self.start, open=self.open, high=self.high, low=self.low, close=self.close,
            volume=self.volume, vwap=vwap, trades=self.trades,
        )  # fmt: skip

    @classmethod
    def from_bar(cls, bar: Bar) -> BarAccumulator:
        return cls(
            bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume,
            bar.vwap * bar.volume, bar.trades,
        )  # fmt: skip


def carried(start: int, close: float) -> Bar:
    """The bar of an interval without trades: the previous close, volume 0."""
    return Bar(start, close, close, close, close, 0.0, close, 0)


@dataclass(frozen=True, slots=True)
class ClosedInterval:
    """Every symbol's bar for one interval of one timeframe (`None`: the symbol never traded)."""

    tf: str
    start: int
    bars: tuple[Bar | None, ...]


@dataclass(slots=True)
class TimeframeBook:
    """The open bars of one timeframe for every symbol, and where closing has reached."""

    tf: str
    n_symbols: int
    tf_ms: int = 0
    closed_until: int | None = None
    """Every bar starting before this is closed (None until the first bar)."""
    keep: int = 1_000
    """A run of intervals with no open bar longer than this is skipped but for its last `keep`:
    they would all carry the same closes, and the statistics only look `keep` bars back. So a
    pipeline restarted after a long pause does not publish days of empty bars."""
    skipped: int = 0
    open: list[dict[int, BarAccumulator]] = field(default_factory=list)
    last_close: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tf_ms = timeframe_ms(self.tf)
        self.open = [{} for _ in range(self.n_symbols)]
        self.last_close = [None] * self.n_symbols

    def floor(self, ts: int) -> int:
        return ts - ts % self.tf_ms

    def fold(self, symbol: int, bar: BarAccumulator) -> bool:
        """Merge a finished finer (or seeded) bar into this timeframe; False when already closed."""
        start = self.floor(bar.start)
        if self.closed_until is not None and start < self.closed_until:
            return False
        if self.closed_until is None:
            self.closed_until = start
        existing = self.open[symbol].get(start)
        if existing is None:
            self.open[symbol][start] = bar.copy(start)
        else:
            existing.merge(bar)
        return True

    def earliest_open(self) -> int | None:
        starts = [min(bars) for bars in self.open if bars]
        return min(starts) if starts else None

    def _skip_quiet(self, target: int) -> None:
        assert self.closed_until is not None
        skip_to = target - self.keep * self.tf_ms
        earliest = self.earliest_open()
        if earliest is not None:
            skip_to = min(skip_to, earliest)
        if skip_to > self.closed_until:
            self.skipped += (skip_to - self.closed_until) // self.tf_ms
            self.closed_until = skip_to

    def close_until(
        self, horizon: int, roll: Callable[[int, BarAccumulator], None] | None = None
    ) -> Iterator[ClosedInterval]:
        """Close every bar that ends at or before `horizon`, interval by interval, in order.

        `roll(symbol, bar)` sees each closed bar with trades first (to fold it into coarser bars).
        """
        if self.closed_until is None:
            return
        target = self.floor(horizon)
        while self.closed_until < target:
            if target - self.closed_until > self.keep * self.tf_ms:
                self._skip_quiet(target)
            start = self.closed_until
            bars: list[Bar | None] = []
            for symbol in range(self.n_symbols):
                accumulator = self.open[symbol].pop(start, None)
                if accumulator is not None:
                    if roll is not None and accumulator.rolls:
                        roll(symbol, accumulator)
                    bar = accumulator.to_bar()
                    self.last_close[symbol] = bar.close
                    bars.append(bar)
                else:
                    previous = self.last_close[symbol]
                    bars.append(None if previous is None else carried(start, previous))
            self.closed_until = start + self.tf_ms
            yield ClosedInterval(self.tf, start, tuple(bars))


class BarEngine:
    """Ticks in, closed intervals of every timeframe out (finest first within a close)."""

    def __init__(self, symbols: Sequence[str], timeframes: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        self.index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self.books = [TimeframeBook(tf, len(self.symbols)) for tf in timeframes]
        self.finest = self.books[0]
        self._step = self.finest.tf_ms
        self._current: list[BarAccumulator | None] = [None] * len(self.symbols)
        self.late = 0

    def add_tick(self, symbol: int, ts: int, price: float, size: float) -> bool:
        """Add one trade; False (and counted) when its bar is already closed."""
        start = ts - ts % self._step
        current = self._current[symbol]
        if current is not None and current.start == start:
            current.add(price, size)
            return True
        finest = self.finest
        if finest.closed_until is None:
            finest.closed_until = start
            for book in self.books[1:]:
                book.closed_until = book.floor(start)
        elif start < finest.closed_until:
            self.late += 1
            return False
        bars = finest.open[symbol]
        accumulator = bars.get(start)
        if accumulator is None:
            accumulator = bars[start] = BarAccumulator.first(start, price, size)
        else:
            accumulator.add(price, size)
        if current is None or start >= current.start:
            self._current[symbol] = accumulator
        return True

    def seed(self, symbol: int, tf_index: int, bar: Bar, *, rolls: bool = False) -> None:
        """Put a bar computed elsewhere (SQLite history) into a timeframe, as an open bar.

        `rolls`: a finest bar that the coarser timeframes were not seeded with.
        """
        book = self.books[tf_index]
        start = book.floor(bar.start)
        if book.closed_until is None or start < book.closed_until:
            book.closed_until = start
        accumulator = BarAccumulator.from_bar(bar)
        accumulator.rolls = rolls
        existing = book.open[symbol].get(start)
        if existing is None:
            book.open[symbol][start] = accumulator
        else:
            existing.merge(accumulator)
        if tf_index == 0:
            current = self._current[symbol]
            if current is None or start >= current.start:
                self._current[symbol] = book.open[symbol][start]

    def in_progress(self, tf_index: int, symbol: int) -> BarAccumulator | None:
        """A copy of the symbol's newest bar not closed yet at a timeframe, so far: for a coarser
        timeframe, its closed finest bars (folded in) merged with the finest bars still open."""
        book = self.books[tf_index]
        parts = list(book.open[symbol].values())
        if tf_index:
            parts += self.finest.open[symbol].values()
        if not parts:
            return None
        start = max(book.floor(bar.start) for bar in parts)
        merged: BarAccumulator | None = None
        for bar in sorted(parts, key=lambda bar: bar.start):
            if book.floor(bar.start) != start:
                continue
            if merged is None:
                merged = bar.copy(start)
            else:
                merged.merge(bar)
        return merged

    def close_until(self, horizon: int) -> list[ClosedInterval]:
        """Close every bar ending at or before `horizon`; finest bars roll into coarser ones."""
        coarser = self.books[1:]

        def roll(symbol: int, bar: BarAccumulator) -> None:
            for book in coarser:
                book.fold(symbol, bar)

        closed = list(self.finest.close_until(horizon, roll if coarser else None))
        if closed:
            boundary = self.finest.closed_until or 0
            for symbol, current in enumerate(self._current):
                if current is not None and current.start < boundary:
                    self._current[symbol] = None
        for book in coarser:
            closed.extend(book.close_until(horizon))
        return closed
