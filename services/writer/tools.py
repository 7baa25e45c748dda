"""`export` and `stats`: CSV export of ticks or bars, and what the tick database holds."""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm

from shared.config import normalize_symbol, timeframe_ms
from shared.history import EXPORT_TICK_COLUMNS, History
from shared.schemas import BAR_FIELDS
from shared.tickdb import TickDbError
from shared.times import iso_ms, parse_time

MAX_TF_MS = 86_400_000
BARS_PER_WINDOW = 100_000
"""Bars are computed one time window of at most this many bars at a time (bounded memory)."""
TICK_HEADER = ["time", *EXPORT_TICK_COLUMNS]
BAR_HEADER = ["time", *BAR_FIELDS]


class ToolError(Exception):
    """A one-line message for the user; `code` 2 for a bad argument, 1 when the work failed."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def format_duration(ms: int) -> str:
    """`3d4h5m6s`, `12.5s`: the largest units, for people."""
    if ms < 60_000:
        return f"{ms / 1000:g}s"
    seconds = ms // 1000
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _time_argument(name: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ToolError(f"--{name} {exc}") from None


def _timeframe(text: str) -> int:
    try:
        tf_ms = timeframe_ms(text)
    except ValueError as exc:
        raise ToolError(f"--tf {exc}") from None
    if tf_ms > MAX_TF_MS:
        raise ToolError(f"--tf {text!r} is longer than a day (1s ... 1d)")
    return tf_ms


def _symbol(history: History, text: str) -> str:
    try:
        symbol = normalize_symbol(text)
    except ValueError as exc:
        raise ToolError(f"--symbol {exc}") from None
    stored = history.symbols()
    if symbol not in stored:
        have = ", ".join(stored) if stored else "no symbol yet"
        raise ToolError(f"no ticks of {symbol} in {history.path} (it has {have})")
    return symbol


def _open(db: Path) -> History:
    history = History(db)
    try:
        history.symbols()
    except TickDbError as exc:
        raise ToolError(str(exc), code=1) from None
    except sqlite3.DatabaseError as exc:
        raise ToolError(f"{db}: {exc}", code=1) from None
    return history


@contextlib.contextmanager
def _output(out: str) -> Iterator[IO[str]]:
    """The CSV destination: stdout, or a temporary file beside `out` renamed over it once
    complete, so a failed or interrupted export never leaves a truncated file."""
    if out == "-":
        yield sys.stdout
        return
    target = Path(out)
    if target.is_dir():
        raise ToolError(f"--out {out!r} is a directory")
    if not target.parent.is_dir():
        raise ToolError(f"--out {out!r}: no such directory {str(target.parent)!r}")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise ToolError(f"--out {out!r}: cannot write there: {exc.strerror}", code=1) from None
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            yield stream
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def export(args: argparse.Namespace, db: Path) -> int:
    history = _open(db)
    symbol = _symbol(history, args.symbol)
    tf_ms = _timeframe(args.tf) if args.tf else None
    span = history.span(symbol)
    assert span is not None
    start = _time_argument("start", args.start, span[0])
    end = _time_argument("end", args.end, span[1] + 1)
    if start >= end:
        raise ToolError(f"--start ({iso_ms(start)}) must be before --end ({iso_ms(end)})")
    with _output(args.out) as stream:
        if tf_ms is None:
            written = _export_ticks(history, stream, symbol, start, end, quiet=args.quiet)
            what = "ticks"
        else:
            written = _export_bars(
                history, stream, symbol, args.tf, (start, end), tf_ms, quiet=args.quiet
            )
            what = f"{args.tf} bars"
    where = "stdout" if args.out == "-" else args.out
    print(f"{written:,} {what} of {symbol} written to {where}", file=sys.stderr)
    return 0


def _export_ticks(
    history: History, stream: IO[str], symbol: str, start: int, end: int, *, quiet: bool
) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(TICK_HEADER)
    total = history.tick_count(symbol, start, end)
    written = 0
    with tqdm(total=total, unit=" ticks", unit_scale=True, disable=quiet, file=sys.stderr) as bar:
        for rows in history.tick_rows(symbol, start, end):
            writer.writerows((iso_ms(row[0]), *row) for row in rows)
            written += len(rows)
            bar.update(len(rows))
    return written


def _export_bars(
    history: History,
    stream: IO[str],
    symbol: str,
    tf: str,
    span: tuple[int, int],
    tf_ms: int,
    *,
    quiet: bool,
) -> int:
    """Bars window by window; each window starts on a bar boundary so no bar is split."""
    start, end = span
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(BAR_HEADER)
    window = tf_ms * BARS_PER_WINDOW
    first = start // tf_ms * tf_ms
    windows = range(first, end, window)
    written = 0
    with tqdm(windows, unit=" windows", disable=quiet or len(windows) < 2, file=sys.stderr) as bar:
        for window_start in bar:
            low, high = max(start, window_start), min(end, window_start + window)
            frame = history.bars(symbol, tf, low, high)
            columns = [frame[name].tolist() for name in BAR_HEADER[1:]]
            writer.writerows((iso_ms(row[0]), *row) for row in zip(*columns, strict=True))
            written += len(frame)
    return written


def stats(args: argparse.Namespace, db: Path) -> int:
    history = _open(db)
    symbols = [_symbol(history, s) for s in args.symbol] if args.symbol else history.symbols()
    try:
        gap_ms = timeframe_ms(args.gap)
    except ValueError as exc:
        raise ToolError(f"--gap {exc}") from None
    if args.top < 0:
        raise ToolError(f"--top {args.top} is negative")
    size_mb = sum(p.stat().st_size for p in db.parent.glob(f"{db.name}*") if p.is_file()) / 1e6
    print(f"tick database {db} ({size_mb:,.1f} MB)")
    if not symbols:
        print("no ticks stored yet")
        return 0
    header = ["symbol", "rows", "trade ids", "back-filled", "first trade", "last trade", "span"]
    header += ["missing ids", f"gaps > {args.gap}"]
    table = [header]
    details: list[str] = []
    for symbol in symbols:
        summary = history.summary(symbol)
        assert summary is not None
        gaps = history.gaps(symbol, gap_ms)
        coverage = history.coverage(symbol)
        sources = summary.rows_by_source
        backfilled = ", ".join(f"{sources[s]:,} {s}" for s in ("rest", "rest-agg") if s in sources)
        table.append([
            symbol, f"{summary.rows:,}", f"{summary.trade_ids:,}", backfilled or "0",
            iso_ms(summary.first_ts), iso_ms(summary.last_ts),
            format_duration(summary.last_ts - summary.first_ts),
            f"{summary.missing_trade_ids:,}", f"{len(gaps):,}",
        ])  # fmt: skip
        longest = sorted(gaps, key=lambda gap: gap.length_ms, reverse=True)[: args.top]
        for gap in sorted(longest, key=lambda gap: gap.after_ts):
            missed = f", {gap.missing_ids:,} ids missing" if gap.missing_ids else ""
            details.append(
                f"  {symbol} quiet {iso_ms(gap.after_ts)} -> {iso_ms(gap.before_ts)}"
                f"  ({format_duration(gap.length_ms)}{missed})"
            )
        widest = sorted(coverage.holes, key=lambda run: run[1] - run[0], reverse=True)
        for first, last in sorted(widest[: args.top]):
            details.append(f"  {symbol} missing ids {first}..{last} ({last - first + 1:,})")
        if coverage.overlaps:
            details.append(f"  {symbol} WARNING: {coverage.overlaps:,} rows cover an id twice")
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    for line in details:
        print(line)
    return 0
