"""`SOURCE=replay`: a recorded file through the same normalizer, sequence check and publisher.

The file formats are in `replay_formats.py`.

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
import logging
import time

from services.ingestor.binance import FrameError, NonMarketPrint, TickRow
from services.ingestor.intake import Intake
from services.ingestor.replay_formats import (
    HeaderLine,
    ReplayFile,
    detect_format,
    normalizer,
)
from shared.config import Settings
from shared.health import now_ms

log = logging.getLogger(__name__)

PROGRESS_S = 5.0


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

    async def close(self, why: str = "stopping") -> None:
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
        replay = ReplayFile(self.path)
        try:
            for count, line in enumerate(replay, 1):
                try:
                    parsed = normalize(line, 0)
                except HeaderLine:
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
