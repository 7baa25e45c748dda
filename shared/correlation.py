"""The correlation matrix of a universe's log returns over one window, its symbols ordered by
hierarchical clustering, and its encoding on `analytics:corr:<tf>:latest` (no I/O).

The worker computes it per timeframe on every closed bar from the same aligned closes as the pair
statistics: `n = min(WINDOW, the most bars any symbol has)` closes, so `n - 1` returns, for the
symbols that have all `n`; a symbol still short of them (it started later) has no row yet. The
correlations are `numpy.corrcoef` of those returns, in one call. The order puts symbols that move
together next to each other: average-linkage clustering on the distance `1 - correlation`, with
scipy's optimal leaf ordering; symbols without a row follow, in listed order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

from shared.pairstats import MIN_BARS
from shared.schemas import SchemaError

FloatArray = npt.NDArray[np.float64]
CORRELATION_FIELDS = ("ts", "tf", "window", "n", "symbols", "values")
"""The hash's fields: bar time, timeframe, window, closes used, symbols in clustering order
(comma separated), and the matrix in that order as JSON rows (null where a symbol has no row)."""


@dataclass(frozen=True)
class CorrelationMatrix:
    """The correlations of log returns between `symbols` (in clustering order) at bar `ts`."""

    ts: int
    tf: str
    window: int
    n: int
    """Closes in the window (`n - 1` returns)."""
    symbols: tuple[str, ...]
    values: FloatArray
    """`values[i, j]`: the correlation of `symbols[i]` and `symbols[j]`; NaN where either has
    too few bars."""

    def value(self, a: str, b: str) -> float:
        return float(self.values[self.symbols.index(a), self.symbols.index(b)])

    def to_fields(self) -> dict[str, str]:
        rows = [[None if np.isnan(v) else float(v) for v in row] for row in self.values]
        return {
            "ts": str(self.ts),
            "tf": self.tf,
            "window": str(self.window),
            "n": str(self.n),
            "symbols": ",".join(self.symbols),
            "values": orjson.dumps(rows).decode(),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> CorrelationMatrix:
        """The matrix of a hash as written; `SchemaError` says what is wrong."""
        missing = [name for name in CORRELATION_FIELDS if name not in fields]
        if missing:
            raise SchemaError(f"missing field {missing[0]!r}")
        symbols = tuple(s for s in fields["symbols"].split(",") if s)
        try:
            rows = orjson.loads(fields["values"])
            values = np.array(
                [[np.nan if v is None else float(v) for v in row] for row in rows], dtype=float
            ).reshape(len(symbols), len(symbols))
            return cls(int(fields["ts"]), fields["tf"], int(fields["window"]), int(fields["n"]),
                       symbols, values)  # fmt: skip
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise SchemaError(f"not a matrix of {len(symbols)} symbols: {exc}") from None


def window_length(counts: npt.NDArray[np.int64], window: int) -> int:
    """Closes the matrix uses: the window, or fewer while no symbol has that many yet."""
    return int(min(window + 1, int(counts.max(initial=0))))


def cluster_order(correlations: FloatArray) -> list[int]:
    """Rows in an order that puts those that move together side by side (average linkage on
    `1 - correlation`, optimal leaf ordering)."""
    size = len(correlations)
    if size < 3:
        return list(range(size))
    distances = np.clip(1.0 - correlations, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    condensed = squareform(distances, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return [int(i) for i in leaves_list(tree)]


def correlation_matrix(
    closes: FloatArray,
    counts: npt.NDArray[np.int64],
    symbols: Sequence[str],
    *,
    ts: int,
    tf: str,
    window: int,
) -> CorrelationMatrix | None:
    """The matrix of the last closes (`closes[s]`: symbol s's closes, aligned, newest last;
    `counts[s]`: how many trailing ones it holds); None while fewer than two symbols have the
    `MIN_BARS` closes a pair needs."""
    n = window_length(counts, window)
    full = [s for s in range(len(symbols)) if counts[s] >= n]
    if n < MIN_BARS or len(full) < 2:
        return None
    returns = np.diff(np.log(closes[full, -n:]), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        held = np.atleast_2d(np.corrcoef(returns))
    order = [full[i] for i in cluster_order(np.nan_to_num(held, nan=0.0))]
    order += [s for s in range(len(symbols)) if s not in full]
    position = {s: i for i, s in enumerate(full)}
    rows = np.array([position.get(s, -1) for s in order], dtype=np.intp)
    values = held[np.ix_(np.maximum(rows, 0), np.maximum(rows, 0))]
    values[rows < 0, :] = np.nan
    values[:, rows < 0] = np.nan
    return CorrelationMatrix(ts, tf, window, n, tuple(symbols[s] for s in order), values)
