"""`SOURCE=replay`: a recorded file through the same normalizer, sequence check and publisher.

Three formats, told apart by the first line (`.gz` accepted for all):
- raw frames, one per line, as `--record FILE` writes them (`{"e":"trade",...}` or the
  `{"stream":..,"data":..}` envelope): they keep their trade ids;
- the collector NDJSON of `sample_data/` (`{"symbol","ts","price","size"}`), which has no trade
  id, maker flag or execution type. Rows with price 0 are `NA` prints. Trade ids are assigned
  per symbol, in file order, from `1000 * (epoch ms of the file's first row)`, so a second
  replay gives the same ids. The aggressor side is inferred by the tick rule (an uptick is a
  buy, a downtick a sell, an unchanged price keeps the previous side);
- Binance's public trades CSV (`id,price,qty,quote_qty,time,is_buyer_maker`, header optional,
  time in ms or µs), the symbol taken from the file name (`BTCUSDT-trades-2025-12-16.csv`).

Time and ids (`Relocation`):
- `REPLAY_SPEED`: 1 = recorded pace, N = N times faster, 0 = as fast as Redis takes them;
- `REPLAY_SHIFT=1` moves every time by one constant so the first trade is now (times are not
  scaled by the speed). Shifted trades are new trades at new times, so their ids move too:
  each symbol's ids are re-based at `1000 * (shifted epoch ms of the first trade)`, keeping the
  file's id differences. A later shifted replay gets new, higher ids, never those of an earlier
  run (which the writer would take for duplicates and ignore);
- `REPLAY_LOOP=1` replays the file again and again. Pass k is moved by k spans of the file in
  time and continues each symbol's ids after the previous pass, so passes are distinct,
  contiguous trades (no gap, no duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from services.ingestor.binance import (
    FrameError,
    NonMarketPrint,
    TickRow,
    normalize_trade,
    parse_frame,
)
from services.ingestor.intake import Intake
from shared.config import Settings
from shared.health import now_ms

log = logging.getLogger(__name__)

Format = Literal["frames", "collector", "csv"]
Normalize = Callable[[bytes, int], TickRow | NonMarketPrint]
PROGRESS_S = 5.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CSV_NAME = re.compile(r"^([A-Za-z0-9]{2,30})-(agg)?trades-", re.IGNORECASE)
MICROSECONDS_ABOVE = 10**14
"""Trade times above this are microseconds (Binance's newer CSV files), not milliseconds."""


class ReplayError(ValueError):
    """The replay file cannot be read as any of the formats; the message says why."""


class ReplayFile:
    """Lines of a file (gzip when it ends in `.gz`), with how far through it the reading is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = max(1, path.stat().st_size)
        self._raw: BinaryIO = path.open("rb")
        self._lines: BinaryIO = self._raw
        if path.suffix == ".gz":
            self._lines = gzip.GzipFile(fileobj=self._raw)  # type: ignore[assignment]

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            line = line.strip()
            if line:
                yield line

    @property
    def fraction(self) -> float:
        """Share of the file (compressed bytes for gzip) read so far."""
        return min(1.0, self._raw.tell() / self.size)

    def close(self) -> None:
        self._lines.close()
        self._raw.close()


def detect_format(path: Path) -> Format:
    """The format of a replay file, from its first line; `ReplayError` when it is none."""
    try:
        replay = ReplayFile(path)
        try:
            first = next(iter(replay), b"")
        finally:
            replay.close()
    except (OSError, EOFError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None
    if not first:
        raise ReplayError(f"{path} is empty")
    if first.startswith(b"{"):
        try:
            row = orjson.loads(first)
        except orjson.JSONDecodeError:
            return "frames"
        if isinstance(row, dict) and {"symbol", "ts", "price", "size"} <= row.keys():
            return "collector"
        return "frames"
    if b"," in first:
        if not CSV_NAME.match(path.name):
            raise ReplayError(
                f"{path.name}: a trades CSV must be named like BTCUSDT-trades-2025-12-16.csv "
                "(the symbol comes from the name)"
            )
        return "csv"
    raise ReplayError(f"{path}: not raw frames, collector NDJSON or a trades CSV")


def decimal_text(number: Any) -> str:
    """A JSON number as plain decimal text: the shortest text that reads back as it."""
    if type(number) is int:
        return str(number)
    if type(number) is not float:
        raise FrameError(f"not a number: {number!r}")
    return format(Decimal(repr(number)), "f")


def parse_iso_ms(text: Any) -> int:
    """`2025-12-16T13:41:38.698Z` as epoch milliseconds (rounded to the nearest)."""
    if type(text) is not str:
        raise FrameError(f"not a time: {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FrameError(f"not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round((moment - EPOCH) / timedelta(milliseconds=1))


@dataclass
class CollectorRows:
    """Collector rows as Binance trade events, with deterministic ids and tick-rule sides."""

    base_id: int | None = None
    next_id: dict[str, int] = field(default_factory=dict)
    last: dict[str, tuple[Decimal, bool]] = field(default_factory=dict)
    _time: tuple[str, int] = ("", 0)
    _decimals: dict[float | int, str] = field(default_factory=dict)

    def __call__(self, line: bytes, recv_ts: int) -> TickRow | NonMarketPrint:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FrameError(f"not JSON: {exc}") from None
        if type(row) is not dict:
            raise FrameError("not a JSON object")
        try:
            symbol, ts = row["symbol"], self._ms(row["ts"])
            price, size = self._decimal(row["price"]), self._decimal(row["size"])
        except KeyError as exc:
            raise FrameError(f"collector row without field {exc.args[0]!r}") from None
        if type(symbol) is not str:
            raise FrameError(f"field 'symbol' is not a string: {symbol!r}")
        if self.base_id is None:
            self.base_id = ts * 1000
        next_id = self.next_id.get(symbol, self.base_id)
        market = Decimal(price) > 0 and Decimal(size) > 0
        if market:
            self.next_id[symbol] = next_id + 1
            trade_id = next_id
            maker = self._buyer_is_maker(symbol, Decimal(price))
        else:
            # An NA print is no trade: it takes the id before the next trade's, so the
            # sequence neither moves nor jumps.
            trade_id, maker = next_id - 1, False
        event = {
            "e": "trade", "T": ts, "s": symbol, "t": trade_id, "p": price, "q": size,
            "X": "MARKET" if market else "NA", "m": maker,
        }  # fmt: skip
        return normalize_trade(event, recv_ts)

    def _ms(self, text: Any) -> int:
        # Many trades share a millisecond: the previous row's time is often this one's.
        if text != self._time[0]:
            self._time = (text, parse_iso_ms(text))
        return self._time[1]

    def _decimal(self, number: Any) -> str:
        if type(number) is not float and type(number) is not int:
            raise FrameError(f"not a number: {number!r}")
        known = self._decimals.get(number)
        if known is None:
            known = decimal_text(number)
            if len(self._decimals) < 100_000:
                self._decimals[number] = known
        return known

    def _buyer_is_maker(self, symbol: str, price: Decimal) -> bool:
        previous = self.last.get(symbol)
        if previous is None or price == previous[0]:
            sell = previous[1] if previous is not None else False
        else:
            sell = price < previous[0]
        self.last[symbol] = (price, sell)
        return sell


@dataclass
class CsvRows:
    """Rows of Binance's public trades CSV as trade events."""

    symbol: str

    def __call__(self, line: bytes, recv_ts: int) -> TickRow | NonMarketPrint:
        text = line.decode("utf-8", "replace")
        cells = next(csv.reader([text]))
        if cells and cells[0] == "id":
            raise _Header
        if len(cells) != 6:
            raise FrameError(f"expected 6 columns, not {len(cells)}: {text!r}")
        trade_id, price, size, _, moment, maker = cells
        try:
            ts = int(moment)
            event = {
                "e": "trade", "T": ts // 1000 if ts > MICROSECONDS_ABOVE else ts,
                "s": self.symbol, "t": int(trade_id), "p": price, "q": size, "X": "MARKET",
                "m": {"true": True, "false": False}[maker.strip().lower()],
            }  # fmt: skip
        except (ValueError, KeyError, InvalidOperation):
            raise FrameError(f"malformed trades CSV row: {text!r}") from None
        return normalize_trade(event, recv_ts)


class _Header(Exception):
    """The CSV header line: skipped."""


def frames(line: bytes, recv_ts: int) -> TickRow | NonMarketPrint:
    return parse_frame(line, recv_ts)


def normalizer(path: Path, kind: Format) -> Normalize:
    """A fresh line normalizer for one pass over `path` (ids start again each pass)."""
    if kind == "collector":
        return CollectorRows()
    if kind == "csv":
        match = CSV_NAME.match(path.name)
        assert match is not None
        return CsvRows(match.group(1).upper())
    return frames


class Relocation:
    """Moves replayed trades in time and renumbers their ids: `REPLAY_SHIFT`, `REPLAY_LOOP`.

    Pass 0 without shift is the identity. Otherwise a trade `(ts, id)` of symbol `s` in pass
    `k` becomes `(ts + shift + k * span, id + offset[s] + k * length[s])`, where `span` is the
    file's time span plus 1 ms, `length[s]` the number of ids of `s` in the file (last - first
    + 1), and `offset[s]` re-bases a shifted replay's ids at `1000 * (shifted first time)`.
    """

    def __init__(self, shift: bool) -> None:
        self.shift = shift
        self.passes = 0
        self.first_ts: int | None = None
        self.time_shift = 0
        self._last_ts = 0
        self._first_id: dict[str, int] = {}
        self._last_id: dict[str, int] = {}
        self._id_offset: dict[str, int] = {}
        self._length: dict[str, int] = {}
        self._span = 0

    def start(self, ts: int, now: int) -> None:
        """The first trade time of the file; `now` is when the replay started."""
        self.first_ts = ts
        if self.shift:
            self.time_shift = now - ts

    def row(self, row: TickRow, recv_ts: int) -> TickRow:
        """The tick moved, and received at `recv_ts` (when the replay hands it over)."""
        ts, symbol, price, size, trade_id, side, _ = row
        return TickRow(
            self._ts(ts), symbol, price, size, self._id(symbol, trade_id), side, recv_ts,
        )  # fmt: skip

    def non_market(self, print_: NonMarketPrint) -> NonMarketPrint:
        return NonMarketPrint(
            print_.symbol, self._id(print_.symbol, print_.trade_id), print_.kind,
            self._ts(print_.ts),
        )  # fmt: skip

    def next_pass(self) -> None:
        """The file ended: the next pass follows it in time and ids."""
        if self.passes == 0:
            assert self.first_ts is not None
            self._span = self._last_ts - self.first_ts + 1
            self._length = {s: self._last_id[s] - self._first_id[s] + 1 for s in self._first_id}
        self.passes += 1

    def _ts(self, ts: int) -> int:
        if self.passes == 0:
            self._last_ts = max(self._last_ts, ts)
        return ts + self.time_shift + self.passes * self._span

    def _id(self, symbol: str, trade_id: int) -> int:
        if self.passes == 0:
            if symbol not in self._first_id:
                self._first_id[symbol] = trade_id
                assert self.first_ts is not None
                base = (self.first_ts + self.time_shift) * 1000
                self._id_offset[symbol] = base - trade_id if self.shift else 0
            self._last_id[symbol] = max(self._last_id.get(symbol, trade_id), trade_id)
            return trade_id + self._id_offset[symbol]
        return trade_id + self._id_offset[symbol] + self.passes * self._length.get(symbol, 0)

    def elapsed_ms(self, ts: int) -> int:
        """Recorded time from the first trade of the first pass to `ts` (as read) of this pass."""
        assert self.first_ts is not None
        return ts - self.first_ts + self.passes * self._span


class ReplaySource:
    """Reads the file, paces it, hands every line to the intake; shows progress."""

    def __init__(self, settings: Settings, intake: Intake, stop: asyncio.Event) -> None:
        assert settings.replay_file is not None
        self.path = settings.replay_file
        self.kind = detect_format(self.path)
        self.speed = settings.replay_speed
        self.loop = settings.replay_loop
        self.relocation = Relocation(settings.replay_shift)
        self.symbols = frozenset(settings.symbols)
        self.stop = stop
        self.done = False
        self.ticks = 0
        self.skipped = 0
        self.percent = 0.0
        self.rate = 0.0
        self._intake = intake
        self._notices = intake.notices
        self._closed = False
        self._skipped_symbols: set[str] = set()

    @property
    def started(self) -> bool:
        return True

    async def run(self) -> None:
        self._notices.event(
            "replay_started",
            f"{self.path} ({self.kind}) speed={self.speed:g} shift={self.relocation.shift} "
            f"loop={self.loop}",
        )
        self._intake.source_flowing(True)
        started = time.monotonic()
        try:
            while True:
                await self._pass(started)
                if self._finished() or not self.loop:
                    break
                self.relocation.next_pass()
                self._notices.event("replay_pass", f"pass {self.relocation.passes + 1} begins")
        finally:
            self._intake.source_flowing(False)
        if not self._finished():
            self.done = True
            self._notices.event(
                "replay_finished",
                f"{self.ticks} ticks from {self.path}; {self.skipped} rows of other symbols",
            )

    async def close(self) -> None:
        self._closed = True

    @property
    def problems(self) -> list[str]:
        return []

    def health_fields(self) -> dict[str, int | str]:
        return {
            "replay_ticks": self.ticks,
            "replay_percent": f"{self.percent:.1f}",
            "replay_rate": f"{self.rate:.0f}",
            "replay_pass": self.relocation.passes + 1,
            "replay_done": int(self.done),
            "replay_skipped": self.skipped,
        }

    def _finished(self) -> bool:
        return self._closed or self.stop.is_set()

    async def _pass(self, started: float) -> None:
        normalize = normalizer(self.path, self.kind)
        relocation = self.relocation
        intake = self._intake
        reported_at, reported_ticks = time.monotonic(), self.ticks
        replay = _open_replay(self.path)
        try:
            for count, line in enumerate(replay, 1):
                try:
                    parsed = normalize(line, 0)
                except _Header:
                    continue
                except FrameError as exc:
                    intake.reject(line, f"{self.path.name} line {count}: {exc}")
                    continue
                symbol = parsed.symbol
                if symbol not in self.symbols:
                    self._skip(symbol)
                    continue
                ts = parsed.ts
                if relocation.first_ts is None:
                    relocation.start(ts, now_ms())
                await self._pace(started, ts, count)
                if isinstance(parsed, NonMarketPrint):
                    intake.non_market(relocation.non_market(parsed))
                    continue
                await intake.tick_waiting(relocation.row(parsed, now_ms()))
                self.ticks += 1
                if self._finished():
                    return
                now = time.monotonic()
                if now - reported_at >= PROGRESS_S:
                    self.percent = 100 * replay.fraction
                    self.rate = (self.ticks - reported_ticks) / (now - reported_at)
                    reported_at, reported_ticks = now, self.ticks
                    self._progress()
        finally:
            replay.close()
        self.percent = 100.0
        self._progress()

    async def _pace(self, started: float, ts: int, count: int) -> None:
        """Wait until the trade is due; at speed 0 only let other tasks run now and then."""
        if self.speed == 0:
            if count % 1000 == 0:
                await asyncio.sleep(0)
            return
        recorded_s = self.relocation.elapsed_ms(ts) / 1000
        wait = started + recorded_s / self.speed - time.monotonic()
        if wait > 0.001:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), wait)

    def _progress(self) -> None:
        log.info(
            "replay progress",
            extra={
                "ticks": self.ticks,
                "rate": round(self.rate),
                "percent": round(self.percent, 1),
                "pass": self.relocation.passes + 1,
            },
        )

    def _skip(self, symbol: str) -> None:
        self.skipped += 1
        if symbol not in self._skipped_symbols:
            self._skipped_symbols.add(symbol)
            log.info("replay skips a symbol not in SYMBOLS", extra={"symbol": symbol})


def _open_replay(path: Path) -> ReplayFile:
    return ReplayFile(path)
