"""The analytics engine: every piece of the worker's state, and every decision, without I/O.

It owns the bars, the event clock, the close matrices and views of every timeframe, the alert
rules and the views wanted. Each method takes values (ticks as read, a time, stored rules and
views, history bars) and returns what happened as values: a `Step` of bars, statistics entries
and alerts to write, keys to delete, views to fill, problems to report and counters to add. The
shell (`service.py`, `rebuild.py`, `fill.py`) reads, calls it and writes what it returns.

A close is returned in two phases, as it is published: `close` gives the bars and the fast
statistics of every view (the latest hashes the dashboard polls), `complete` the slow work left
(Huber hedges, the stationarity tests due) and the alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from services.analytics.alerts import RuleBook
from services.analytics.bars import BarEngine
from services.analytics.clock import EventClock
from services.analytics.forming import LegNow, forming
from services.analytics.outputs import (
    BadEntry,
    BarOut,
    FieldsOut,
    FillDone,
    FillJob,
    FormingOut,
    HistoryRead,
    Ingested,
    Problem,
    StatOut,
    Step,
    ViewProgress,
    Wanted,
)
from services.analytics.pairs import Entry, TimeframePairs, ViewState, complete_entry
from services.analytics.ticks import BadTick, RawEntry, as_mapping, describe_entry, parse_entry
from services.analytics.views import ViewRegistry
from shared import keys
from shared.bargrid import carried_closes
from shared.config import Settings
from shared.correlation import CorrelationMatrix, correlation_matrix, window_length
from shared.pairstats import (
    MIN_BARS,
    STATIONARITY_FIELDS,
    Stationarity,
    adf_due,
    adf_phase,
    pair_stats,
    stationarity,
)
from shared.schemas import Alert, AnalyticsRequest, Bar, Forming, PairStat, SchemaError
from shared.screener import ScreenRow
from shared.views import PairView, default_views


def due_rows(ts: np.ndarray, tf_ms: int, adf_every: int, phase: int) -> np.ndarray:
    """Which of the bars at `ts` run the stationarity tests."""
    return np.array([adf_due(int(t), tf_ms, adf_every, phase) for t in ts.tolist()], dtype=bool)


def has_extra(stat: PairStat) -> bool:
    return any(getattr(stat, name) is not None for name in STATIONARITY_FIELDS)


class Engine:
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
        defaults = default_views(settings.pair_legs, settings.timeframes, settings.window)
        self.defaults = {view.id for view in defaults}
        self.registry = ViewRegistry(
            settings.symbols, settings.timeframes, defaults, settings.max_views
        )
        self.rules = RuleBook(settings.symbols, settings.timeframes, settings.window)
        self.requested: set[str] = set()
        self.last_recv_ts = 0
        self.newest_trade = [(0, 0)] * len(self.symbols)
        """Per symbol, (event time, receive time) of the newest trade read."""
        self._forming_sent: dict[str, Forming] = {}
        self._forming_ms = settings.dash_forming_ms
        self._next_forming = 0.0
        self.stream_index = {keys.ticks(s): i for i, s in enumerate(self.symbols)}
        """tick stream -> symbol index."""
        self._closing = False
        self._slow: list[Entry] = []
        self._by_view: dict[ViewState, list[Entry]] = {}
        self._closed = 0
        self._closed_tfs: list[str] = []

    # Views.

    def views(self) -> list[ViewState]:
        return [state for pairs in self.pairs.values() for state in pairs.views.values()]

    def view(self, view_id: str) -> ViewState | None:
        for pairs in self.pairs.values():
            state = pairs.views.get(view_id)
            if state is not None:
                return state
        return None

    def _add_view(self, view: PairView) -> ViewState:
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
            forming_key=view.forming_key(window),
        )
        self.pairs[view.tf].add(state)
        return state

    def _load(self, wanted: Wanted) -> tuple[list[PairView], list[Problem]]:
        loaded = self.rules.load(wanted.rules, wanted.rule_count)
        problems = [Problem("bad-rule", text) for text in loaded]
        requested, view_problems = self.registry.requested(wanted.views)
        problems += [Problem("bad-view", text) for text in view_problems]
        self.requested = {view.id for view in requested}
        return requested, problems

    def configure(self, wanted: Wanted) -> Step:
        """At start: serve the default views, those requested and those rules watch."""
        requested, problems = self._load(wanted)
        for view_id in sorted(self.defaults):
            self._add_view(PairView.parse(view_id))
        for view in [*requested, *self.rules.views()]:
            self._add_view(view)
        return Step(problems=problems)

    def set_wanted(self, stored: Wanted) -> Step:
        """The rules and requested views as stored now: views dropped, views added to fill."""
        requested, problems = self._load(stored)
        wanted = {view.id: view for view in [*requested, *self.rules.views()]}
        for view_id in self.defaults:
            wanted.pop(view_id, None)
        current = {s.id: s for s in self.views() if s.id not in self.defaults}
        deletes: list[str] = []
        dropped: list[str] = []
        for view_id, state in current.items():
            if view_id not in wanted:
                self.pairs[state.view.tf].remove(view_id)
                dropped.append(view_id)
                deletes += [state.stream_key, state.latest_key, state.forming_key]
                self._forming_sent.pop(view_id, None)
        fills: list[str] = []
        for view_id, view in wanted.items():
            if view_id not in current:
                self._add_view(view).ready = False
                fills.append(view_id)
        self._prime()
        return Step(problems=problems, deletes=deletes, dropped=dropped, fills=fills)

    def _prime(self) -> None:
        for state in self.views():
            self.rules.prime(state.id, state.last, state.stationarity)

    # Ticks and requests.

    def ingest(
        self, streams: Sequence[tuple[str, list[RawEntry]]], wall: float, count: int
    ) -> Ingested:
        """Add a batch of ticks to the bars (`ticks:<symbol>` streams) and run the requests
        (any other stream); `count`: entries asked per stream (one that gave as many is held)."""
        add = self.bars.add_tick
        stream_index = self.stream_index
        held: int | None = None
        consumed = 0
        bad: list[BadEntry] = []
        fields: list[FieldsOut] = []
        problems: list[Problem] = []
        adf_requests = 0
        for stream, entries in streams:
            index = stream_index.get(stream)
            if index is None:
                adf_requests += self._requests(entries, fields, problems)
                continue
            symbol = self.symbols[index]
            last_ts: int | None = None
            recv_ts = 0
            for entry_id, flat in entries:
                try:
                    ts, price, size, recv_ts = parse_entry(flat, symbol)
                except BadTick as exc:
                    bad.append(BadEntry(describe_entry(stream, entry_id, flat), str(exc)))
                    continue
                add(index, ts, price, size)
                last_ts = ts
            consumed += len(entries)
            if last_ts is None:
                continue
            self.clock.observe(last_ts, wall, index)
            self.last_recv_ts = max(self.last_recv_ts, recv_ts)
            if last_ts >= self.newest_trade[index][0]:
                self.newest_trade[index] = (last_ts, recv_ts)
            if len(entries) >= count and (held is None or last_ts < held):
                held = last_ts
        counts: dict[str, int] = {}
        if consumed:
            counts["ticks_consumed"] = consumed - len(bad)
        if adf_requests:
            counts["adf_requests"] = adf_requests
        step = Step(fields=fields, problems=problems, counts=counts)
        return Ingested(step, held, bad)

    def _requests(
        self, entries: list[RawEntry], fields: list[FieldsOut], problems: list[Problem]
    ) -> int:
        """`analytics-requests`: `kind=adf view=<id>` computes the stationarity now; how many
        were run."""
        runs = 0
        for entry_id, flat in entries:
            try:
                request = AnalyticsRequest.from_fields(as_mapping(flat))
            except SchemaError as exc:
                problems.append(Problem("bad-request", f"request {entry_id}: {exc}"))
                continue
            state = self.view(request.view)
            if request.kind != "adf":
                text = f"request {entry_id}: unknown kind {request.kind!r}"
                problems.append(Problem("bad-request", text))
            elif state is None or not state.ready:
                text = f"request {entry_id}: view {request.view!r} is not served"
                problems.append(Problem("bad-request", text))
            else:
                runs += 1
                out = self._adf_now(state)
                if out.fields:
                    fields.append(out)
        return runs

    def _adf_now(self, state: ViewState) -> FieldsOut:
        matrix = self.pairs[state.view.tf].matrix
        n = min(int(matrix.count[state.a]), int(matrix.count[state.b]), state.view.window)
        beta = state.last.beta if state.last is not None else float("nan")
        values: dict[str, str] = {}
        if n >= 3:
            extra = stationarity(matrix.row(state.a, n), matrix.row(state.b, n), beta)
            values = extra.fields()
            if values:
                state.latest_extra = True
                state.stationarity_ts = matrix.last_start
            state.stationarity = extra
        state.force_adf = True
        return FieldsOut(state.latest_key, values)

    # Closing bars.

    def close(self, wall: float, held: int | None = None) -> Step | None:
        """Close every bar the clock allows at `wall`; None when it allows none."""
        horizon = self.clock.horizon(wall, held)
        if horizon is None:
            return None
        return self._close(horizon)

    def _close(self, horizon: int) -> Step:
        """The bars closed up to `horizon` and the fast part of their views' statistics."""
        bars: list[BarOut] = []
        entries: list[Entry] = []
        closed: dict[str, int] = {}
        for book in self.bars.books:
            book.keep = self.pairs[book.tf].matrix.capacity + 1
        for interval in self.bars.close_until(horizon):
            closed[interval.tf] = closed.get(interval.tf, 0) + 1
            closes: list[float | None] = []
            for symbol, bar in enumerate(interval.bars):
                if bar is None:
                    closes.append(None)
                    continue
                closes.append(bar.close)
                key = (interval.tf, symbol)
                if bar.start > self.bars_published.get(key, -1):
                    self.bars_published[key] = bar.start
                    bars.append(BarOut(interval.tf, self.symbols[symbol], bar))
            entries.extend(self.pairs[interval.tf].on_interval(interval.start, closes))
        stats: list[StatOut] = []
        slow: list[Entry] = []
        deferred: set[ViewState] = set()
        by_view: dict[ViewState, list[Entry]] = {}
        for entry in entries:
            state = entry.view
            by_view.setdefault(state, []).append(entry)
            if entry.slow or state in deferred:
                deferred.add(state)
                slow.append(entry)
                if entry.stat is not None:
                    stats.append(self._out(state, entry.stat, stream=False))
            else:
                assert entry.stat is not None
                stats.append(self._out(state, entry.stat))
                state.last, state.published_until = entry.stat, entry.start
        self._slow, self._by_view = slow, by_view
        self._closed, self._closing = len(entries), True
        self._closed_tfs = list(closed)
        counts = {f"bars_closed_{tf}": count for tf, count in closed.items()}
        return Step(bars=bars, stats=stats, counts=counts, closed=sum(closed.values()))

    def complete(self) -> Step:
        """The slow statistics of the last close, then the alerts of its bars."""
        if not self._closing:
            return Step()
        slow, by_view = self._slow, self._by_view
        self._slow, self._by_view, self._closing = [], {}, False
        stats: list[StatOut] = []
        adf_runs = 0
        newest = {entry.view: entry.start for entry in slow}
        for entry in slow:
            done = complete_entry(entry, self.settings.kalman_delta)
            if done.stationarity is not None:
                entry.view.stationarity = done.stationarity
                if done.stationarity.fields():
                    entry.view.stationarity_ts = entry.start
            if entry.due:
                adf_runs += 1
            latest = newest[entry.view] == entry.start
            stats.append(self._out(entry.view, done.stat, latest=latest))
            entry.view.last, entry.view.published_until = done.stat, entry.start
        alerts: list[Alert] = []
        for state, entries in by_view.items():
            values = [entry.stat for entry in entries if entry.stat is not None]
            alerts += self.rules.evaluate(state.id, values, state.stationarity)
        correlations = [self._correlation(tf) for tf in self._closed_tfs]
        fields = [FieldsOut(keys.correlation(m.tf), m.to_fields()) for m in correlations if m]
        fields += self._screener(by_view)
        counts = {"stats_published": self._closed}
        if adf_runs:
            counts["adf_runs"] = adf_runs
        if alerts:
            counts["alerts_fired"] = len(alerts)
        return Step(stats=stats, fields=fields, alerts=alerts, counts=counts)

    def _screener(self, closed: Mapping[ViewState, Sequence[Entry]]) -> list[FieldsOut]:
        """The screener rows of the views that got statistics in this close, per series."""
        rows: dict[str, dict[str, str]] = {}
        for state in closed:
            if state.last is None:
                continue
            view = state.view
            row = ScreenRow(view.a, view.b, state.last, state.stationarity, state.stationarity_ts)
            key = view.screener_key(self.settings.window)
            rows.setdefault(key, {})[row.pair] = row.to_json()
        return [FieldsOut(key, values) for key, values in rows.items()]

    def _correlation(self, tf: str) -> CorrelationMatrix | None:
        """The universe's correlation matrix at `tf` as of its newest closed bar."""
        matrix = self.pairs[tf].matrix
        if len(self.symbols) < 2 or matrix.last_start is None:
            return None
        n = window_length(matrix.count, self.settings.window)
        closes = matrix.window(np.arange(len(self.symbols), dtype=np.intp), n)
        return correlation_matrix(
            closes, matrix.count, self.symbols, ts=matrix.last_start, tf=tf,
            window=self.settings.window,
        )  # fmt: skip

    def _out(
        self, state: ViewState, stat: PairStat, *, stream: bool = True, latest: bool = True
    ) -> StatOut:
        drop = False
        if latest:
            extra = has_extra(stat)
            drop = state.latest_extra and not extra
            state.latest_extra = extra
        return StatOut(state.stream_key, state.latest_key, stat, stream, latest, drop)

    # Bars in progress.

    def forming_due(self, wall: float) -> Step:
        """The bars in progress at most every `DASH_FORMING_MS` of wall time (never when 0): at
        once when the last ones went out longer ago, so a trade after a quiet spell is not held
        back."""
        if not self._forming_ms or wall < self._next_forming:
            return Step()
        step = self.forming()
        if step.forming:
            self._next_forming = wall + self._forming_ms
        return step

    def forming(self) -> Step:
        """Each served view's bar in progress that changed since it was last given."""
        outs: list[FormingOut] = []
        for tf_index, tf in enumerate(self.timeframes):
            legs: dict[int, LegNow] = {}
            for state in self.pairs[tf].views.values():
                if not state.ready:
                    continue
                for symbol in (state.a, state.b):
                    if symbol not in legs:
                        legs[symbol] = self._leg_now(tf_index, symbol)
                record = forming(legs[state.a], legs[state.b], state.last)
                if record is None or self._forming_sent.get(state.id) == record:
                    continue
                self._forming_sent[state.id] = record
                outs.append(FormingOut(state.forming_key, record))
        return Step(forming=outs, counts={"forming_published": len(outs)} if outs else {})

    def _leg_now(self, tf_index: int, symbol: int) -> LegNow:
        trade_ts, recv_ts = self.newest_trade[symbol]
        last_close = self.bars.books[tf_index].last_close[symbol]
        return LegNow(self.bars.in_progress(tf_index, symbol), last_close, trade_ts, recv_ts)

    # Restoring from history.

    def restore_progress(
        self, bars: Mapping[tuple[str, int], int], views: Sequence[ViewProgress], fill_bars: int
    ) -> None:
        """What the streams already hold; views with none keep `fill_bars` more closes."""
        self.bars_published.update(bars)
        for progress in views:
            state = self.view(progress.view_id)
            if state is not None:
                state.published_until, state.last = progress.published_until, progress.last
        for state in self.views():
            if state.published_until is None:
                self.pairs[state.view.tf].matrix.grow(state.view.window + fill_bars)

    def lookback_starts(self, event_ts: int, max_bars: int) -> dict[str, int]:
        """Per timeframe, the first bar a restart needs: `capacity` bars before the oldest bar
        not yet published (at most `max_bars` back: older ones are not published late)."""
        lows: dict[str, int] = {}
        for tf, pairs in self.pairs.items():
            now = event_ts - event_ts % pairs.tf_ms
            published = [state.published_until for state in pairs.views.values() if state.ready]
            published += [self.bars_published.get((tf, i)) for i in range(len(self.symbols))]
            resume = min((p + pairs.tf_ms for p in published if p is not None), default=now)
            resume = max(min(resume, now), now - max_bars * pairs.tf_ms)
            lows[tf] = resume - (pairs.matrix.capacity + 2) * pairs.tf_ms
        return lows

    def restore_bars(
        self,
        seeded: Sequence[tuple[int, int, Bar, bool]],
        ticks: Iterable[tuple[int, int, float, float]],
    ) -> int:
        """Bars from SQLite (symbol, timeframe index, bar, whether it rolls into the coarser
        timeframes), then the stream's ticks (ts, symbol, price, size) in trade-time order."""
        for symbol, k, bar, rolls in seeded:
            self.bars.seed(symbol, k, bar, rolls=rolls)
        add = self.bars.add_tick
        replayed = 0
        for ts, symbol, price, size in ticks:
            add(symbol, ts, price, size)
            replayed += 1
        self.bars.late = 0
        return replayed

    def restore_fired(self, alerts: Sequence[Alert]) -> None:
        """The alerts sent before (oldest first): rules do not fire again within cooldown."""
        for alert in alerts:
            self.rules.last_fired[alert.rule] = alert.ts
        for state in self.rules.rules.values():
            state.last_fired = self.rules.last_fired.get(state.rule_id)

    def resume(self, event_ts: int | None, wall: float) -> Step:
        """Start serving after the restore: close what is due (the fast part), and fill the
        views whose streams are empty (those with too few bars are served live at once)."""
        empty = [state for state in self.views() if state.published_until is None]
        for state in empty:
            state.ready = False
        self._prime()
        self.clock.resume(event_ts, wall)
        horizon = self.clock.horizon(wall)
        step = Step() if horizon is None else self._close(horizon)
        fills: list[str] = []
        for state in empty:
            if self._aligned_bars(state) >= MIN_BARS:
                fills.append(state.id)
            else:
                state.ready = True
        return replace(step, fills=fills)

    def _aligned_bars(self, state: ViewState) -> int:
        count = self.pairs[state.view.tf].matrix.count
        return min(int(count[state.a]), int(count[state.b]))

    # Filling a view from history.

    def fill_wanted(self, view_id: str) -> ViewState | None:
        """The view, if it is served and waits for its fill; it keeps the closes it needs."""
        state = self.view(view_id)
        if state is None or state.ready:
            return None
        needed = state.view.window + self.settings.view_fill_bars - 1
        self.pairs[state.view.tf].matrix.grow(needed + 1)
        return state

    def history_read(self, view_id: str, leg: int) -> HistoryRead | None:
        """The older closes of the view's leg (0 or 1) to read from SQLite, if any are missing."""
        state = self.view(view_id)
        if state is None:
            return None
        pairs = self.pairs[state.view.tf]
        symbol = (state.a, state.b)[leg]
        needed = state.view.window + self.settings.view_fill_bars - 1
        oldest = pairs.matrix.oldest_start(symbol)
        missing = needed - int(pairs.matrix.count[symbol])
        if oldest is None or missing <= 0:
            return None
        first = oldest - missing * pairs.tf_ms
        return HistoryRead(symbol, self.symbols[symbol], pairs.tf, first, oldest)

    def backfill(self, read: HistoryRead, bars: pd.DataFrame) -> int:
        """Put the bars read in front of the closes held, unless the row moved meanwhile."""
        pairs = self.pairs[read.tf]
        if pairs.matrix.oldest_start(read.symbol) != read.oldest:
            return 0
        closes = carried_closes(bars, read.first, read.oldest, pairs.tf_ms)
        return pairs.matrix.backfill(read.symbol, closes)

    def _series(self, state: ViewState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = self.pairs[state.view.tf]
        matrix = pairs.matrix
        n = min(int(matrix.count[state.a]), int(matrix.count[state.b]))
        last = matrix.last_start or 0
        ts = last - np.arange(n - 1, -1, -1, dtype=np.int64) * pairs.tf_ms
        return ts, matrix.row(state.a, n), matrix.row(state.b, n)

    def fill_job(self, view_id: str) -> FillJob | None:
        state = self.view(view_id)
        if state is None:
            return None
        pairs = self.pairs[state.view.tf]
        ts, a, b = self._series(state)
        first = max(0, len(ts) - self.settings.view_fill_bars, MIN_BARS - 1)
        return FillJob(
            view_id, state.view, state.stream_key, state.latest_key, state.phase, pairs.tf_ms,
            pairs.adf_every, pairs.kalman_delta, ts, a, b, first,
        )  # fmt: skip

    def fill_done(self, job: FillJob, stats: Sequence[PairStat]) -> FillDone:
        """The fill's `stats` are in the view's stream: catch up the bars closed meanwhile and
        serve the view live."""
        state = self.view(job.view_id)
        assert state is not None, "a dropped view's fill is cancelled"
        pairs = self.pairs[state.view.tf]
        snapshot_end = int(job.ts[-1]) if len(job.ts) else None
        latest_ts, now_a, now_b = self._series(state)
        catch_up: list[PairStat] = []
        if len(latest_ts):
            begin = 0 if snapshot_end is None else int(np.searchsorted(latest_ts, snapshot_end + 1))
            due = due_rows(latest_ts, pairs.tf_ms, pairs.adf_every, state.phase)
            catch_up = pair_stats(
                latest_ts, now_a, now_b, window=state.view.window, method=state.view.method,
                kalman_delta=pairs.kalman_delta, adf_rows=due, start=begin,
            )  # fmt: skip
        outs = [self._out(state, stat, latest=False) for stat in catch_up]
        everything = [*stats, *catch_up]
        if everything:
            newest = everything[-1]
            outs.append(self._out(state, newest, stream=False))
            state.last = newest
            state.published_until = newest.ts
        else:
            state.published_until = pairs.matrix.last_start
        carrying = [stat for stat in everything if Stationarity.of(stat) is not None]
        if carrying:
            state.stationarity = Stationarity.newest(carrying) or state.stationarity
            state.stationarity_ts = carrying[-1].ts
        state.ready = True
        self.rules.prime(state.id, state.last, state.stationarity)
        return FillDone(Step(stats=outs, counts={"views_filled": 1}), len(everything))

    def fill_failed(self, view_id: str) -> None:
        """A fill that failed: the view is served live only."""
        state = self.view(view_id)
        if state is not None:
            state.published_until = self.pairs[state.view.tf].matrix.last_start
            state.ready = True

    # Health.

    def health(self, now: int) -> dict[str, int]:
        states = self.views()
        rules = self.rules
        return {
            "pairs_served": len(self.settings.pair_legs),
            "views_served": sum(1 for s in states if s.ready),
            "views_requested": len(self.requested),
            "views_filling": sum(1 for s in states if not s.ready),
            "rules_active": len(rules.rules),
            "rules_disabled": len(rules.disabled),
            "rules_invalid": len(rules.invalid) + rules.unreadable,
            "late_ticks": self.bars.late,
            "intervals_skipped": sum(book.skipped for book in self.bars.books),
            "event_time": self.clock.high or 0,
            "lag_ms": max(0, now - self.last_recv_ts) if self.last_recv_ts else 0,
        }
