"""The CSV export: both legs' bars and the pair statistics on one time axis, ISO-8601 UTC.

One row per bar time present in either leg or in the statistics (bars' `start`, statistics'
`ts`), in time order, after a header row. A cell is empty where that series has no value.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from services.dashboard.figures import ChartData, DrawnBar
from shared.schemas import BAR_FIELDS, PAIR_STAT_FIELDS, PairStat
from shared.times import iso_ms

BAR_COLUMNS = BAR_FIELDS[1:]
"""Each leg's columns (a bar's fields but its `start`, which is the row's time)."""
STAT_COLUMNS = PAIR_STAT_FIELDS[1:]
"""The statistics' columns (a `PairStat`'s fields but its `ts`, which is the row's time)."""


def header(a: str, b: str, bar_columns: Sequence[str] = BAR_COLUMNS) -> list[str]:
    return [
        "time",
        *(f"{a}_{c}" for c in bar_columns),
        *(f"{b}_{c}" for c in bar_columns),
        *STAT_COLUMNS,
    ]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def in_range(ms: int, start_ms: int | None, end_ms: int | None) -> bool:
    return (start_ms is None or ms >= start_ms) and (end_ms is None or ms <= end_ms)


def to_csv(
    a: str,
    b: str,
    bars_a: Sequence[DrawnBar],
    bars_b: Sequence[DrawnBar],
    stats: Sequence[PairStat],
    start_ms: int | None = None,
    end_ms: int | None = None,
    *,
    bar_columns: Sequence[str] = BAR_COLUMNS,
) -> str:
    """The export file's text for times in `[start_ms, end_ms]` (either end open when None).

    `bar_columns` leaves out what a source does not have (uploads have no VWAP or trade count);
    the bars have them all (`shared.schemas.Bar`).
    """
    rows: dict[int, dict[str, object]] = {}
    for prefix, bars in ((a, bars_a), (b, bars_b)):
        for bar in bars:
            if in_range(bar.start, start_ms, end_ms):
                row = rows.setdefault(bar.start, {})
                row.update({f"{prefix}_{c}": getattr(bar, c) for c in bar_columns})
    for stat in stats:
        if in_range(stat.ts, start_ms, end_ms):
            rows.setdefault(stat.ts, {}).update({c: getattr(stat, c) for c in STAT_COLUMNS})
    columns = header(a, b, bar_columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for ts in sorted(rows):
        row = rows[ts]
        writer.writerow([iso_ms(ts), *(_cell(row.get(c)) for c in columns[1:])])
    return out.getvalue()


def filename(a: str, b: str, tf: str, start_ms: int | None, end_ms: int | None) -> str:
    """`BTCUSDT-ETHUSDT_1m_20251216T134100Z_20251216T134400Z.csv`."""

    def stamp(ms: int | None) -> str:
        if ms is None:
            return "open"
        return iso_ms(ms)[:19].replace("-", "").replace(":", "") + "Z"

    return f"{a}-{b}_{tf}_{stamp(start_ms)}_{stamp(end_ms)}.csv"


class Export(NamedTuple):
    """A CSV file to download, and how many data rows it has."""

    filename: str
    text: str
    rows: int


def zoomed_range(zoom: dict[str, Any] | None, key: str) -> tuple[int | None, int | None]:
    """The time range the user zoomed to on the view `key`; open ends otherwise."""
    if zoom and zoom.get("key") == key:
        return zoom.get("start"), zoom.get("end")
    return None, None


def export_chart(
    chart: ChartData, start: int | None, end: int | None, bar_columns: Sequence[str]
) -> Export:
    text = to_csv(
        chart.a,
        chart.b,
        chart.bars_a,
        chart.bars_b,
        chart.stats,
        start,
        end,
        bar_columns=bar_columns,
    )
    name = filename(chart.a, chart.b, chart.tf, start, end)
    return Export(name, text, text.count("\n") - 1)
