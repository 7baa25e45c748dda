"""The state rebuilt at start from SQLite and the tick streams, so that the statistics are right
from the first bar after a restart, not `W` bars later.

For each symbol, SQLite holds every tick the writer has stored, up to its newest trade time `X`;
the tick stream holds the recent ticks, `X` included. So:

1. every timeframe gets its bars of the last `W + 2` intervals before `X` from SQLite
   (`History.bars`), the finest one also the part of its bar in progress at `X`;
2. the ticks of the stream from `X` on are replayed, in trade-time order across symbols;
3. the bars are closed up to the event clock, exactly as live, publishing only the bars and
   statistics newer than those already in their streams (a crash never duplicates them);
4. the consumer group is set to the last entry replayed, so the live loop goes on from there.

With no SQLite (first start, or the writer not running) the stream alone is replayed. Views
whose stream is empty at start are filled from history by `fill.py` instead.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd

from services.analytics.engine import Engine
from services.analytics.outputs import ViewProgress
from services.analytics.redis_wire import revrange
from services.analytics.ticks import BadTick, ParsedTick, parse_fields
from shared import keys
from shared.config import timeframe_ms
from shared.history import BAR_COLUMNS, History
from shared.redis_io import Redis, decoded, ensure_group
from shared.schemas import Bar, PairStat, SchemaError
from shared.tickdb import TickDbError

log = logging.getLogger(__name__)

CHUNK = 10_000
REBUILD_MAX_BARS = 5_000
"""Bars missed while the worker was down are published late up to this many per timeframe."""


@dataclass
class RebuildReport:
    tails: dict[str, str] = field(default_factory=dict)
    """tick stream -> id of the last entry replayed (where the consumer group goes on)."""
    history_bars: int = 0
    stream_ticks: int = 0
    event_ts: int | None = None


async def read_progress(redis: Redis, engine: Engine, fill_bars: int) -> None:
    """What the streams already hold: the newest bar per series, each view's last entry."""
    pipe = redis.pipeline(transaction=False)
    bar_keys = [(tf, i) for tf in engine.timeframes for i in range(len(engine.symbols))]
    for tf, i in bar_keys:
        pipe.xrevrange(keys.bars(tf, engine.symbols[i]), count=1)
    states = engine.views()
    for state in states:
        pipe.xrevrange(state.stream_key, count=1)
        pipe.hgetall(state.latest_key)
    replies = await pipe.execute()
    bars: dict[tuple[str, int], int] = {}
    for (tf, i), reply in zip(bar_keys, replies, strict=False):
        if reply:
            try:
                bars[(tf, i)] = Bar.from_fields(decoded(reply[0][1])).start
            except SchemaError:
                log.warning("unreadable last bar", extra={"tf": tf, "symbol": i})
    views: list[ViewProgress] = []
    view_replies = replies[len(bar_keys) :]
    for state, last, latest in zip(states, view_replies[::2], view_replies[1::2], strict=True):
        if not last:
            continue
        try:
            published_until = int(decoded(last[0][1])["ts"])
        except (KeyError, ValueError):
            log.warning("unreadable last entry", extra={"key": state.stream_key})
            continue
        stat: PairStat | None = None
        try:
            stat = PairStat.from_fields(decoded(latest)) if latest else None
        except (KeyError, ValueError):
            log.warning("unreadable last entry", extra={"key": state.stream_key})
        views.append(ViewProgress(state.id, published_until, stat))
    engine.restore_progress(bars, views, fill_bars)


async def newest_tick(redis: Redis, symbol: str) -> tuple[str | None, int | None]:
    """The id of the newest entry of `ticks:<symbol>` and the newest trade time among the last."""
    entries = await revrange(redis, keys.ticks(symbol), count=100)
    newest_ts: int | None = None
    for _, fields in entries:
        try:
            newest_ts = parse_fields(fields, symbol)[0]
            break
        except BadTick:
            continue
    return (entries[0][0] if entries else None), newest_ts


async def stream_ticks(redis: Redis, symbol: str, upper: str, since: int) -> list[ParsedTick]:
    """The ticks of `ticks:<symbol>` up to entry `upper` with trade time `since` or later,
    read newest first until an older one (trades are in time order on a symbol's stream)."""
    stream = keys.ticks(symbol)
    ticks: list[ParsedTick] = []
    while True:
        entries = await revrange(redis, stream, upper=upper, count=CHUNK)
        reached = False
        for _, fields in entries:
            try:
                tick = parse_fields(fields, symbol)
            except BadTick:
                continue
            if tick[0] < since:
                reached = True
                break
            ticks.append(tick)
        if reached or len(entries) < CHUNK:
            break
        upper = f"({entries[-1][0]}"
    ticks.reverse()
    return ticks


def _bars(frame: pd.DataFrame) -> list[Bar]:
    columns = [frame[name].to_numpy().tolist() for name in BAR_COLUMNS]
    return [
        Bar(int(start), float(o), float(h), float(lo), float(c), float(v), float(vwap), int(n))
        for start, o, h, lo, c, v, vwap, n in zip(*columns, strict=True)
    ]


def _history_bars(
    history: History, engine: Engine, cuts: dict[int, int], lows: dict[str, int]
) -> Iterator[tuple[int, int, Bar, bool]]:
    """(symbol, timeframe index, bar, rolls) from SQLite: see the module docstring."""
    finest_ms = timeframe_ms(engine.timeframes[0])
    for symbol, cut in cuts.items():
        name = engine.symbols[symbol]
        finest_cut = cut - cut % finest_ms
        for k, tf in enumerate(engine.timeframes):
            hi = cut if k == 0 else finest_cut
            for bar in _bars(history.bars(name, tf, lows[tf], hi)):
                yield symbol, k, bar, k == 0 and bar.start >= finest_cut


def _sqlite_cuts(history: History | None, symbols: Sequence[str]) -> dict[int, int]:
    if history is None:
        return {}
    cuts: dict[int, int] = {}
    for symbol, name in enumerate(symbols):
        span = history.span(name)
        if span is not None:
            cuts[symbol] = span[1]
    return cuts


async def rebuild(
    redis: Redis, engine: Engine, history: History | None, fill_bars: int
) -> RebuildReport:
    """Rebuild bars, closes and clock from history; what was read.

    A view whose stream is empty is to be filled with `fill_bars` bars, so its timeframe keeps
    (and the rebuild reads) that much more history.
    """
    report = RebuildReport()
    await read_progress(redis, engine, fill_bars)
    try:
        cuts = await asyncio.to_thread(_sqlite_cuts, history, engine.symbols)
    except TickDbError as exc:
        log.info("no tick history yet", extra={"detail": str(exc)})
        cuts = {}
    newest: list[tuple[str | None, int | None]] = [
        await newest_tick(redis, name) for name in engine.symbols
    ]
    for name, (tail, _) in zip(engine.symbols, newest, strict=True):
        report.tails[keys.ticks(name)] = tail or "0"
    known = [ts for _, ts in newest if ts is not None] + list(cuts.values())
    if not known:
        return report
    event_ts = report.event_ts = max(known)
    lows = engine.lookback_starts(event_ts, REBUILD_MAX_BARS)
    earliest = min(lows.values())
    per_symbol: list[list[ParsedTick]] = []
    for symbol, name in enumerate(engine.symbols):
        tail = newest[symbol][0]
        since = max(cuts.get(symbol, earliest), earliest)
        per_symbol.append([] if tail is None else await stream_ticks(redis, name, tail, since))
    seeded: list[tuple[int, int, Bar, bool]] = []
    if cuts and history is not None:
        seeded = await asyncio.to_thread(lambda: list(_history_bars(history, engine, cuts, lows)))
        report.history_bars = len(seeded)
    merged = heapq.merge(
        *[[(t[0], symbol, t[1], t[2]) for t in ticks] for symbol, ticks in enumerate(per_symbol)]
    )
    report.stream_ticks = engine.restore_bars(seeded, merged)
    return report


async def set_groups(redis: Redis, tails: dict[str, str]) -> None:
    """Point the `analytics` group of each tick stream at the last entry replayed."""
    for stream, tail in tails.items():
        if not await ensure_group(redis, stream, keys.ANALYTICS_GROUP, start_id=tail):
            await redis.xgroup_setid(stream, keys.ANALYTICS_GROUP, tail)
    if not await ensure_group(redis, keys.ANALYTICS_REQUESTS, keys.ANALYTICS_GROUP, "$"):
        await redis.xgroup_setid(keys.ANALYTICS_REQUESTS, keys.ANALYTICS_GROUP, "$")
