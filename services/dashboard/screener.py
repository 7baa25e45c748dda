"""The screener view (pure): the worker's rows of one series as table rows, the plain filters,
the colours, the rows that changed since the page's last update, the CSV export, and the
correlation heatmap.

Every row of the series travels once; after that only rows whose values changed do (the page
holds a digest per row). The table sorts and filters in the browser (its own query language,
written from the plain conditions by `ScreenFilter.query`), so a live update never reorders it;
the export applies the same conditions on the server (`ScreenFilter.keeps`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.dashboard.export import Export
from shared.config import timeframe_ms
from shared.correlation import CorrelationMatrix
from shared.schemas import SchemaError
from shared.screener import ScreenRow
from shared.times import iso_ms
from shared.views import PairView

COINT_P = 0.05
"""The p-value under which a pair counts as cointegrated (and its spread as stationary), as on
the pair view's statistics panel."""


@dataclass(frozen=True)
class Column:
    id: str
    name: str
    kind: str = "numeric"
    digits: int = 4
    exported: str = ""
    """The row field the export writes instead (`as_of`, the full ISO-8601 time)."""

    @property
    def export_id(self) -> str:
        return self.exported or self.id


COLUMNS = (
    Column("pair", "pair", "text"),
    Column("zscore", "z-score", digits=2),
    Column("beta", "β", digits=4),
    Column("alpha", "α", digits=4),
    Column("corr", "corr (log returns)", digits=3),
    Column("spread_std", "spread σ", digits=4),
    Column("adf_pvalue", "ADF p", digits=4),
    Column("coint_pvalue", "coint p (EG)", digits=4),
    Column("half_life", "half-life (bars)", digits=1),
    Column("half_life_s", "half-life (s)", digits=0),
    Column("bars", "bars in window", digits=0),
    Column("as_of_time", "as of (UTC)", "text", exported="as_of"),
    Column("tests_bars_ago", "p-values from (bars ago)", digits=0),
)
"""The table's columns, in order; `id` is the row field (and the export's header)."""


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def table_row(row: ScreenRow, tf: str) -> dict[str, Any]:
    """One table row of a screener row (None where a value is not known yet)."""
    tf_ms = timeframe_ms(tf)
    stat, carried = row.stat, row.carried
    half_life = _number(carried.half_life)
    return {
        "id": row.pair,
        "pair": f"{row.a} / {row.b}",
        "a": row.a,
        "b": row.b,
        "zscore": _number(stat.zscore),
        "abs_z": None if _number(stat.zscore) is None else abs(stat.zscore),
        "beta": _number(stat.beta),
        "alpha": _number(stat.alpha),
        "corr": _number(stat.corr),
        "spread_std": _number(stat.spread_std),
        "adf_pvalue": _number(carried.adf_pvalue),
        "coint_pvalue": _number(carried.coint_pvalue),
        "half_life": half_life,
        "half_life_s": None if half_life is None else half_life * tf_ms / 1000,
        "bars": stat.n,
        "ts": stat.ts,
        "as_of": iso_ms(stat.ts + tf_ms),
        "as_of_time": iso_ms(stat.ts + tf_ms)[11:19],
        "adf_ts": row.adf_ts,
        "tests_bars_ago": None if row.adf_ts is None else (stat.ts - row.adf_ts) // tf_ms,
    }


def digest(row: Mapping[str, Any]) -> str:
    """What tells a changed row from an unchanged one."""
    return hashlib.blake2b(repr(sorted(row.items())).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class ScreenFilter:
    """The plain conditions: cointegrated (`coint p < 0.05`), stretched (`|z| > k`), and a text
    the pair must contain."""

    cointegrated: bool = False
    stretched: bool = False
    k: float = 2.0
    contains: str = ""

    @classmethod
    def of_controls(cls, conditions: Any, contains: Any, k: Any) -> ScreenFilter:
        """The filter the controls hold (an unreadable threshold counts as the default 2)."""
        chosen = set(conditions or [])
        try:
            threshold = float(k)
        except (TypeError, ValueError):
            threshold = 2.0
        if not math.isfinite(threshold) or threshold <= 0:
            threshold = 2.0
        text = contains if isinstance(contains, str) else ""
        return cls("cointegrated" in chosen, "stretched" in chosen, threshold, text)

    def _text(self) -> str:
        return "".join(c for c in self.contains.upper() if c.isalnum())

    def query(self) -> str:
        """The conditions in the table's filter language."""
        parts = []
        if self.cointegrated:
            parts.append(f"{{coint_pvalue}} < {COINT_P}")
        if self.stretched:
            parts.append(f"{{abs_z}} > {self.k:g}")
        if self._text():
            parts.append(f"{{id}} contains {self._text()}")
        return " && ".join(parts)

    def keeps(self, row: Mapping[str, Any]) -> bool:
        """The same conditions on the server (the export)."""
        coint, abs_z = row.get("coint_pvalue"), row.get("abs_z")
        if self.cointegrated and not (coint is not None and coint < COINT_P):
            return False
        if self.stretched and not (abs_z is not None and abs_z > self.k):
            return False
        return self._text() in str(row.get("id", ""))


def colours(k: float) -> list[dict[str, Any]]:
    """The table's conditional styles: a stretched z-score (|z| ≥ k) and a p-value under 5% are
    marked as the pair view marks them."""
    stretched = "#ef5350"
    significant = "#26a69a"
    styles: list[dict[str, Any]] = [
        {"if": {"filter_query": f"{{abs_z}} >= {k:g}", "column_id": "zscore"},
         "color": stretched, "fontWeight": "600"},
    ]  # fmt: skip
    for column in ("adf_pvalue", "coint_pvalue"):
        styles.append(
            {
                "if": {"filter_query": f"{{{column}}} < {COINT_P}", "column_id": column},
                "color": significant,
                "fontWeight": "600",
            }
        )
    return styles


@dataclass(frozen=True)
class ScreenUpdate:
    """What a screener update sends: every row (`full`) or only the changed ones by position
    (`changed`), and the digests the page holds after it."""

    full: list[dict[str, Any]] | None
    changed: dict[int, dict[str, Any]]
    held: dict[str, Any]


def update(
    rows: Sequence[dict[str, Any]],
    digests: Sequence[str],
    held: Mapping[str, Any] | None,
    series: str,
) -> ScreenUpdate:
    """The rows to send, given what the page holds (`held`: the series, the pairs in order, a
    digest per row). Another series, another set of pairs or no rows held: all of them."""
    order = [row["id"] for row in rows]
    now = {"series": series, "order": order, "digests": list(digests)}
    if not held or held.get("series") != series or held.get("order") != order:
        return ScreenUpdate(list(rows), {}, now)
    before = held.get("digests") or []
    changed = {i: rows[i] for i, d in enumerate(digests) if i >= len(before) or before[i] != d}
    return ScreenUpdate(None, changed, now)


@dataclass(frozen=True)
class Built:
    """The table rows of the served pairs that have one, in listed order, with their digests,
    and how many stored rows did not parse."""

    rows: list[dict[str, Any]]
    digests: list[str]
    skipped: int


class TableRows:
    """Table rows by the stored JSON they came from: a live update parses, builds and digests
    only the rows whose JSON changed (a tenth of 1,225 a bar, against all of them). Bounded and
    safe to share between the server's threads (entries are replaced, never changed)."""

    def __init__(self, max_rows: int = 20_000) -> None:
        self._held: dict[tuple[str, str], tuple[str, dict[str, Any] | None, str]] = {}
        self._lock = threading.Lock()
        self._max_rows = max_rows

    def build(self, stored: Mapping[str, str], legs: Sequence[tuple[str, str]], tf: str) -> Built:
        rows: list[dict[str, Any]] = []
        digests: list[str] = []
        skipped = 0
        with self._lock:
            held = dict(self._held)
        fresh: dict[tuple[str, str], tuple[str, dict[str, Any] | None, str]] = {}
        for a, b in legs:
            pair = f"{a}-{b}"
            text = stored.get(pair)
            if text is None:
                continue
            known = held.get((tf, pair))
            if known is None or known[0] != text:
                known = (text, *_built(text, tf))
                fresh[(tf, pair)] = known
            if known[1] is None:
                skipped += 1
                continue
            rows.append(known[1])
            digests.append(known[2])
        with self._lock:
            if len(self._held) + len(fresh) > self._max_rows:
                self._held.clear()
            self._held.update(fresh)
        return Built(rows, digests, skipped)


def _built(text: str, tf: str) -> tuple[dict[str, Any] | None, str]:
    try:
        row = table_row(ScreenRow.from_json(text), tf)
    except SchemaError:
        return None, ""
    return row, digest(row)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV: the table's columns by id, full precision, times as ISO-8601 UTC, empty
    where a value is not known."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([column.export_id for column in COLUMNS])
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = row.get(column.export_id)
            if column.id == "pair":
                value = row["id"]
            cells.append(
                "" if value is None else repr(value) if isinstance(value, float) else str(value)
            )
        writer.writerow(cells)
    return out.getvalue()


def export(built: Built, series: Series, keep: ScreenFilter) -> Export:
    """The screener's CSV file: the rows of `series` that pass `keep`."""
    table = [row for row in built.rows if keep.keeps(row)]
    name = f"screener_{series.tf}_w{series.window}_{series.method}.csv"
    return Export(name, to_csv(table), len(table))


def heatmap(matrix: CorrelationMatrix | None, theme: str) -> dict[str, Any]:
    """The correlation heatmap as a plain figure: symbols in clustering order, hover with the
    value, a click opens the pair."""
    dark = theme != "light"
    layout: dict[str, Any] = {
        "template": "plotly_dark" if dark else "plotly_white",
        "margin": {"l": 90, "r": 20, "t": 30, "b": 90},
        "height": 520,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "uirevision": "screener",
    }
    if matrix is None:
        note = "No correlation matrix yet: it needs a few closed bars of at least two symbols"
        layout["annotations"] = [
            {"text": note, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}
        ]
        return {"data": [], "layout": layout}
    values = [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in matrix.values]
    title = f"Correlation of log returns: {matrix.n - 1} {matrix.tf} returns to {iso_ms(matrix.ts)}"
    layout["title"] = {"text": title, "font": {"size": 13}}
    trace = {
        "type": "heatmap",
        "x": list(matrix.symbols),
        "y": list(matrix.symbols),
        "z": values,
        "zmin": -1,
        "zmax": 1,
        "colorscale": "RdBu",
        "reversescale": True,
        "hovertemplate": "%{y} / %{x}: %{z:.3f}<extra></extra>",
    }
    layout["yaxis"] = {"autorange": "reversed"}
    return {"data": [trace], "layout": layout}


def row_pair(
    cell: Mapping[str, Any] | None, legs: Sequence[tuple[str, str]]
) -> tuple[str, str] | None:
    """The served pair of a clicked table cell (its row's id is the pair)."""
    row_id = (cell or {}).get("row_id")
    for a, b in legs:
        if row_id == f"{a}-{b}":
            return a, b
    return None


def clicked_pair(
    point: Mapping[str, Any] | None, legs: Sequence[tuple[str, str]]
) -> tuple[str, str] | None:
    """The served pair of a heatmap cell (either orientation); None off the diagonal's pairs."""
    if not point:
        return None
    x, y = point.get("x"), point.get("y")
    for a, b in legs:
        if {a, b} == {x, y} and a != b:
            return a, b
    return None


@dataclass(frozen=True)
class Series:
    """The screener's series: every served pair at one timeframe, window and method."""

    tf: str
    window: int
    method: str

    @classmethod
    def of_controls(cls, tf: Any, window: Any, method: Any, default_window: int) -> Series:
        """The series the controls name; `ValueError` saying what is wrong."""
        if not isinstance(tf, str) or not tf:
            raise ValueError("pick a timeframe")
        try:
            size = int(window) if window not in (None, "") else default_window
        except (TypeError, ValueError):
            raise ValueError(f"the window {window!r} is not a number of bars") from None
        return cls(tf, size, method if isinstance(method, str) and method else "ols")

    @property
    def name(self) -> str:
        return f"{self.tf} · window {self.window} · {self.method.upper()}"

    def views(self, legs: Sequence[tuple[str, str]]) -> list[PairView]:
        return [PairView(a, b, self.tf, self.window, self.method) for a, b in legs]  # type: ignore[arg-type]

    def key(self, legs: Sequence[tuple[str, str]], default_window: int) -> str:
        return self.views(legs[:1])[0].screener_key(default_window)

    def asked(
        self, legs: Sequence[tuple[str, str]], default_window: int, max_views: int
    ) -> list[str]:
        """The views a page asks the worker for: none for the default series (the worker serves
        it for every pair), else one per pair, as many as `MAX_VIEWS` allows."""
        views = self.views(legs)
        if views and views[0].is_default(default_window):
            return []
        return [view.id for view in views[:max_views]]


def status(
    shown: int, pairs: int, series: Series, skipped: int, newest_ms: int | None, now_ms: int
) -> str:
    """The line above the table: what it shows and how fresh the newest values are."""
    if not pairs:
        return "One symbol has no pairs: list two or more in SYMBOLS to screen them."
    text = f"Screener · {series.name} · {shown} of {pairs} pairs"
    if newest_ms is not None:
        text += f" · newest values {max(0, now_ms - newest_ms) / 1000:.0f} s old"
    if shown < pairs:
        text += " · the others have no statistics yet (a new series fills first)"
    if skipped:
        text += f" · {skipped} malformed rows skipped"
    return text


@dataclass(frozen=True)
class ScreenerRead:
    """The rows of one series as stored (JSON by pair), and the correlation matrix of its
    timeframe (None when there is none yet or it does not parse)."""

    stored: Mapping[str, str]
    matrix: CorrelationMatrix | None


@dataclass(frozen=True)
class ScreenerScreen:
    """One screener update: the rows to send (`update`), the status line, and the heatmap when
    the page's is of another series or `HEATMAP_EVERY_MS` older (None: keep it)."""

    update: ScreenUpdate
    status: str
    heatmap: dict[str, Any] | None


HEATMAP_EVERY_MS = 5_000
"""The heatmap is sent again when the matrix has moved on this much (bar time): its 2,500 cells
would otherwise be most of every update, and a window's correlations barely move in a bar."""


def screen(
    built: Built,
    matrix: CorrelationMatrix | None,
    series: Series,
    pairs: int,
    held: Mapping[str, Any] | None,
    theme: str,
    now_ms: int,
) -> ScreenerScreen:
    """What the page gets from what was read and what it holds."""
    key = f"{series.name}|{theme}"
    changes = update(built.rows, built.digests, held, key)
    same_series = held is not None and held.get("series") == key
    shown_ts = held.get("matrix_ts") if held is not None and same_series else None
    if matrix is None:
        due = not same_series  # the "no matrix yet" figure, once
    else:
        due = shown_ts is None or matrix.ts - int(shown_ts) >= HEATMAP_EVERY_MS
    changes.held["matrix_ts"] = matrix.ts if due and matrix is not None else shown_ts
    newest = max((row["ts"] for row in built.rows), default=None)
    newest_end = None if newest is None else newest + timeframe_ms(series.tf)
    line = status(len(built.rows), pairs, series, built.skipped, newest_end, now_ms)
    return ScreenerScreen(changes, line, heatmap(matrix, theme) if due else None)
