"""The worker's state without I/O: bars, event clock, pair statistics per timeframe and views.

`service.py` feeds it ticks and asks it to close bars up to the clock's horizon; each close gives
a `Step`: the bars and the view entries to publish, in interval order. `rebuild.py` fills the same
state from history at start, through the same calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.analytics.bars import BarEngine
from services.analytics.clock import EventClock
from services.analytics.pairs import Entry, TimeframePairs, ViewState
from shared.config import Settings
from shared.pairstats import adf_phase
from shared.schemas import Bar, PairStat
from shared.views import PairView


@dataclass
class Step:
    bars: list[tuple[str, str, Bar]] = field(default_factory=list)
    """(tf, symbol, bar) to publish on `bars:<tf>:<symbol>`."""
    entries: list[Entry] = field(default_factory=list)
    closed: dict[str, int] = field(default_factory=dict)
    """Intervals closed per timeframe."""

    def __bool__(self) -> bool:
        return bool(self.closed)


class Analytics:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.symbols = settings.symbols
        self.index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self.timeframes = settings.timeframes
        self.bars = BarEngine(self.symbols, self.timeframes)
        self.clock = EventClock(settings.bar_lateness_ms, settings.bar_max_wait_ms)
        self.pairs = {
            tf: TimeframePairs(
                tf, len(self.symbols), settings.window + 1, settings.adf_every,
                settings.kalman_delta,
            )
            for tf in self.timeframes
        }  # fmt: skip
        self.bars_published: dict[tuple[str, int], int] = {}
        """(tf, symbol index) -> start of the newest bar in `bars:<tf>:<symbol>`."""

    def views(self) -> list[ViewState]:
        return [state for pairs in self.pairs.values() for state in pairs.views.values()]

    def view(self, view_id: str) -> ViewState | None:
        for pairs in self.pairs.values():
            state = pairs.views.get(view_id)
            if state is not None:
                return state
        return None

    def add_view(
        self, view: PairView, published_until: int | None = None, last: PairStat | None = None
    ) -> ViewState:
        """Serve `view` (its keys from `WINDOW`: the default series has no variant)."""
        existing = self.view(view.id)
        if existing is not None:
            return existing
        window = self.settings.window
        state = ViewState(
            view=view,
            a=self.index[view.a],
            b=self.index[view.b],
            stream_key=view.stream_key(window),
            latest_key=view.latest_key(window),
            phase=adf_phase(view.id, self.settings.adf_every),
            published_until=published_until,
            last=last,
        )
        self.pairs[view.tf].add(state)
        return state

    def remove_view(self, view_id: str) -> ViewState | None:
        for pairs in self.pairs.values():
            state = pairs.remove(view_id)
            if state is not None:
                return state
        return None

    def close(self, horizon: int) -> Step:
        """Close every bar ending at or before `horizon`; what to publish, in order."""
        step = Step()
        for book in self.bars.books:
            book.keep = self.pairs[book.tf].matrix.capacity + 1
        for interval in self.bars.close_until(horizon):
            step.closed[interval.tf] = step.closed.get(interval.tf, 0) + 1
            closes: list[float | None] = []
            for symbol, bar in enumerate(interval.bars):
                if bar is None:
                    closes.append(None)
                    continue
                closes.append(bar.close)
                key = (interval.tf, symbol)
                if bar.start > self.bars_published.get(key, -1):
                    self.bars_published[key] = bar.start
                    step.bars.append((interval.tf, self.symbols[symbol], bar))
            step.entries.extend(self.pairs[interval.tf].on_interval(interval.start, closes))
        return step
