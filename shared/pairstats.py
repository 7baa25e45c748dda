"""Pair statistics over aligned close prices: one implementation for the worker and the dashboard.

For a window of the last `n` aligned bars (`n = min(bars so far, W)`, at least `MIN_BARS`) of close
prices `A` and `B`:

- `alpha`, `beta`: the hedge of A on B by the view's method (`A = alpha + beta * B`):
  - `ols`: least squares with an intercept, computed on centred prices (two-pass, exact);
  - `kalman`: a Kalman filter on a random-walk hedge, run over the window (see `kalman_hedge`);
  - `huber`: statsmodels `RLM` with the `HuberT` norm (IRLS, MAD scale, the statsmodels defaults).
- `spread = A - beta * B` at the last bar; `spread_mean`, `spread_std` (ddof 1) are the mean and
  standard deviation of `s_i = A_i - beta * B_i` over the window and
  `zscore = (spread - spread_mean) / spread_std`. With OLS, `spread_mean == alpha` and the
  z-score is the last residual over the residuals' standard deviation.
- `corr`: Pearson correlation of the legs' log returns inside the window (`n - 1` returns).
- On the bars where they are asked for (`adf_rows`), the stationarity of `s`: `adf_stat`,
  `adf_pvalue` (statsmodels `adfuller`, constant, AIC lag selection), `half_life = -ln 2 / lambda`
  from the OLS of `s_i - s_(i-1)` on `s_(i-1)` with an intercept (only when `lambda < 0`), and the
  Engle-Granger `coint_pvalue` (statsmodels `coint`, constant, AIC) of A on B.

A statistic that is undefined on a window (a leg that did not move, a spread with no variance
beyond rounding) is NaN; a stationarity field that cannot be computed (fewer than
`STATIONARITY_MIN_BARS` bars, a constant spread) is left out (None).

`window_stats` works on many windows at once (one per row): the worker passes one row per pair
of a timeframe, `pair_stats` one row per bar of a series, so both run the same arithmetic.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from typing_extensions import Unpack

from shared.schemas import PairStat, record_fields
from shared.table import Table
from shared.views import METHODS, Method

FloatArray = npt.NDArray[np.float64]

MIN_BARS = 3
"""Fewest aligned bars a statistic is published for (two log returns for the correlation)."""
STATIONARITY_MIN_BARS = 20
"""Fewest bars the ADF, half-life and cointegration tests are run on."""
DEFAULT_KALMAN_DELTA = 1e-3
KALMAN_PRIOR_VARIANCE = 1e4
"""The Kalman filter's prior on the standardized (alpha, beta): diffuse next to unit variance."""
LN2 = math.log(2.0)
SPREAD_NOISE = 1e-10
"""A spread whose standard deviation is below this fraction of the price is rounding noise (the
legs move in exact proportion): its z-score is undefined (NaN), not a ratio of two noises."""


@dataclass(frozen=True, slots=True)
class WindowStats:
    """The statistics of k windows, one value per row."""

    alpha: FloatArray
    beta: FloatArray
    spread: FloatArray
    spread_mean: FloatArray
    spread_std: FloatArray
    zscore: FloatArray
    corr: FloatArray


@dataclass(frozen=True, slots=True)
class Stationarity:
    """The stationarity tests of a window. They run every `ADF_EVERY` bars, so the statistics
    between two runs carry the last run's values: `newest` finds them, `applied_to` puts them
    on an entry."""

    adf_stat: float | None = None
    adf_pvalue: float | None = None
    half_life: float | None = None
    coint_pvalue: float | None = None

    @classmethod
    def of(cls, stat: PairStat) -> Stationarity | None:
        """The stationarity fields an entry carries, or None when it carries none."""
        values = [getattr(stat, name) for name in STATIONARITY_FIELDS]
        return None if all(v is None for v in values) else cls(*values)

    @classmethod
    def newest(
        cls, stats: Sequence[PairStat], previous: Stationarity | None = None
    ) -> Stationarity | None:
        """The values of the newest of `stats` that carries them, else `previous`."""
        if isinstance(stats, Table):  # found in the columns: a record per row is costly
            carried = np.zeros(len(stats), dtype=bool)
            for name in STATIONARITY_FIELDS:
                carried |= ~np.isnan(stats.column(name))
            rows = np.flatnonzero(carried)
            return cls.of(stats[int(rows[-1])]) if len(rows) else previous
        for stat in reversed(stats):
            found = cls.of(stat)
            if found is not None:
                return found
        return previous

    def applied_to(self, stat: PairStat) -> PairStat:
        return replace(stat, **{name: getattr(self, name) for name in STATIONARITY_FIELDS})

    def values(self) -> dict[str, float]:
        """The computed fields by name."""
        return {
            name: value
            for name in STATIONARITY_FIELDS
            if (value := getattr(self, name)) is not None
        }

    def fields(self) -> dict[str, str]:
        """The computed fields, encoded as in a stream entry."""
        return {
            name: repr(value)
            for name in STATIONARITY_FIELDS
            if (value := getattr(self, name)) is not None
        }


STATIONARITY_FIELDS = record_fields(Stationarity)
_WINDOW_FIELDS = record_fields(WindowStats)


def _rows(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array of windows (one per row), got {array.ndim}-D")
    return array


def kalman_hedge(a: FloatArray, b: FloatArray, delta: float) -> tuple[float, float]:
    """The hedge (alpha, beta) at the last bar of one window by a Kalman filter.

    Model: the state (alpha_t, beta_t) is a random walk and `A_t = alpha_t + beta_t B_t + e_t`.
    The filter runs over the window in standardized units (each leg centred and divided by its
    window standard deviation, so the result does not depend on the price scale), starting from
    a diffuse prior N(0, `KALMAN_PRIOR_VARIANCE` I). The observation noise R is the OLS residual
    variance of the window; the state noise is `Q = delta / (1 - delta) * R * I`, so `delta`
    alone sets how fast the hedge may move (1e-3: a memory of roughly 1/sqrt(q) ~ 30 bars).
    Running over the window (not from the first bar ever) makes the value a function of the
    window alone: the same live, after a restart and in a CSV analysis.
    """
    sd_a, sd_b = float(a.std()), float(b.std())
    if not (sd_a > 0 and sd_b > 0):
        return math.nan, math.nan
    mean_a, mean_b = float(a.mean()), float(b.mean())
    y = ((a - mean_a) / sd_a).tolist()
    x = ((b - mean_b) / sd_b).tolist()
    n = len(x)
    rho = sum(xi * yi for xi, yi in zip(x, y, strict=True)) / n
    noise = max((1.0 - rho * rho) * n / max(n - 2, 1), 1e-12)
    q = delta / (1.0 - delta) * noise
    c = g = 0.0
    p00 = p11 = KALMAN_PRIOR_VARIANCE
    p01 = 0.0
    for xi, yi in zip(x, y, strict=True):
        p00 += q
        p11 += q
        ph0 = p00 + p01 * xi
        ph1 = p01 + p11 * xi
        s = ph0 + ph1 * xi + noise
        k0, k1 = ph0 / s, ph1 / s
        error = yi - c - g * xi
        c += k0 * error
        g += k1 * error
        p00, p01, p11 = p00 - k0 * ph0, p01 - k0 * ph1, p11 - k1 * ph1
    beta = g * sd_a / sd_b
    return mean_a + sd_a * c - beta * mean_b, beta


def huber_hedge(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """statsmodels `RLM(A, [1, B], M=HuberT()).fit()` (its defaults); NaN when it cannot fit."""
    import statsmodels.api as sm

    if not float(b.max()) > float(b.min()):
        return math.nan, math.nan
    exog = np.column_stack([np.ones_like(b), b])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            params = sm.RLM(a, exog, M=sm.robust.norms.HuberT()).fit().params
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
            return math.nan, math.nan
    alpha, beta = float(params[0]), float(params[1])
    if not (math.isfinite(alpha) and math.isfinite(beta)):
        return math.nan, math.nan
    return alpha, beta


def _row_dot(x: FloatArray, y: FloatArray) -> FloatArray:
    """The sum of `x * y` along each row, with no temporary array (three times faster)."""
    dot: FloatArray = np.einsum("ij,ij->i", x, y)
    return dot


def _log_return_corr(returns_a: FloatArray, returns_b: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ra = returns_a - returns_a.mean(axis=1)[:, None]
        rb = returns_b - returns_b.mean(axis=1)[:, None]
        denominator = np.sqrt(_row_dot(ra, ra) * _row_dot(rb, rb))
        corr: FloatArray = _row_dot(ra, rb) / denominator
    return np.where(denominator > 0, corr, np.nan)


def log_returns(prices: FloatArray) -> FloatArray:
    """`log(p_i) - log(p_(i-1))` along the last axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diff(np.log(prices), axis=-1)


def window_stats(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    method: Method = "ols",
    kalman_delta: float = DEFAULT_KALMAN_DELTA,
    *,
    returns: tuple[FloatArray, FloatArray] | None = None,
) -> WindowStats:
    """The statistics of each row's window; `a`, `b` are (k, n) arrays of close prices, n >= 3.
    `returns`: the legs' log returns over the same windows ((k, n - 1) arrays, `log_returns`),
    when the caller has them: a series' are computed once, not once for each window."""
    a, b = _rows(a), _rows(b)
    if a.shape != b.shape:
        raise ValueError(f"legs differ in shape: {a.shape} and {b.shape}")
    if a.shape[1] < MIN_BARS:
        raise ValueError(f"a window needs at least {MIN_BARS} bars, got {a.shape[1]}")
    mean_a, mean_b = a.mean(axis=1), b.mean(axis=1)
    centred_a, centred_b = a - mean_a[:, None], b - mean_b[:, None]
    if method == "ols":
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = _row_dot(centred_a, centred_b) / _row_dot(centred_b, centred_b)
        alpha = mean_a - beta * mean_b
    elif method == "kalman":
        hedges = [kalman_hedge(x, y, kalman_delta) for x, y in zip(a, b, strict=True)]
        alpha, beta = np.array(hedges).T
    elif method == "huber":
        hedges = [huber_hedge(x, y) for x, y in zip(a, b, strict=True)]
        alpha, beta = np.array(hedges).T
    else:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    n = a.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = centred_a - beta[:, None] * centred_b
        spread_std = np.sqrt(_row_dot(centred, centred) / (n - 1))
        defined = spread_std > SPREAD_NOISE * np.abs(mean_a)
        zscore = np.where(defined, centred[:, -1] / spread_std, np.nan)
    returns_a, returns_b = (log_returns(a), log_returns(b)) if returns is None else returns
    return WindowStats(
        alpha=alpha,
        beta=beta,
        spread=a[:, -1] - beta * b[:, -1],
        spread_mean=mean_a - beta * mean_b,
        spread_std=spread_std,
        zscore=zscore,
        corr=_log_return_corr(returns_a, returns_b),
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def adf(spread: FloatArray) -> tuple[float, float] | None:
    """statsmodels `adfuller(s, regression="c", autolag="AIC")`: (statistic, p-value), or None."""
    from statsmodels.tsa.stattools import adfuller

    if len(spread) < STATIONARITY_MIN_BARS or not np.all(np.isfinite(spread)):
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            result = adfuller(spread, regression="c", autolag="AIC", result_object=True)
        except (ValueError, np.linalg.LinAlgError):
            return None
    statistic, pvalue = float(result.statistic), float(result.pvalue)
    return (statistic, pvalue) if math.isfinite(statistic) else None


def half_life(spread: FloatArray) -> float | None:
    """`-ln 2 / lambda` from the OLS of `s_i - s_(i-1)` on `s_(i-1)` with an intercept.

    None when the spread does not revert (`lambda >= 0`) or cannot be fitted.
    """
    if len(spread) < MIN_BARS or not np.all(np.isfinite(spread)):
        return None
    level = spread[:-1] - spread[:-1].mean()
    change = np.diff(spread)
    change = change - change.mean()
    denominator = float(level @ level)
    if not denominator > 0:
        return None
    lam = float(level @ change) / denominator
    return -LN2 / lam if lam < 0 else None


def coint_pvalue(a: FloatArray, b: FloatArray) -> float | None:
    """Engle-Granger p-value of statsmodels `coint(A, B, trend="c", autolag="aic")`, or None."""
    from statsmodels.tsa.stattools import coint

    if len(a) < STATIONARITY_MIN_BARS or not float(b.max()) > float(b.min()):
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            result = coint(a, b, trend="c", autolag="aic")
        except (ValueError, np.linalg.LinAlgError):
            return None
    return _finite(float(result[1]))


def stationarity(a: FloatArray, b: FloatArray, beta: float) -> Stationarity:
    """The stationarity fields of one window, on `s = A - beta * B` (None where not computable)."""
    if len(a) < STATIONARITY_MIN_BARS or not math.isfinite(beta):
        return Stationarity()
    spread = a - beta * b
    tested = adf(spread)
    return Stationarity(
        adf_stat=None if tested is None else tested[0],
        adf_pvalue=None if tested is None else tested[1],
        half_life=half_life(spread),
        coint_pvalue=coint_pvalue(a, b),
    )


def adf_phase(view_id: str, every: int) -> int:
    """A stable offset per view, so that views run their ADF on different bars (round robin)."""
    return zlib.crc32(view_id.encode()) % every


def adf_due(bar_start: int, tf_ms: int, every: int, phase: int) -> bool:
    """Whether the bar starting at `bar_start` is one where the view computes stationarity.

    Tied to the bar's time, not to a counter, so the worker, a restarted worker and a history
    fill pick the same bars.
    """
    return (bar_start // tf_ms + phase) % every == 0


def _check_series(
    ts: Sequence[int] | npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike, window: int
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray]:
    times = np.asarray(ts, dtype=np.int64)
    prices_a = np.asarray(a, dtype=np.float64)
    prices_b = np.asarray(b, dtype=np.float64)
    if not (times.ndim == prices_a.ndim == prices_b.ndim == 1):
        raise ValueError("ts, a and b must be 1-D sequences")
    if not len(times) == len(prices_a) == len(prices_b):
        raise ValueError(
            f"ts, a and b differ in length: {len(times)}, {len(prices_a)}, {len(prices_b)}"
        )
    if window < MIN_BARS:
        raise ValueError(f"window must be at least {MIN_BARS}, got {window}")
    for name, prices in (("a", prices_a), ("b", prices_b)):
        if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
            raise ValueError(f"prices of {name} must be finite and above zero")
    return times, prices_a, prices_b


CHUNK_VALUES = 1 << 17
"""Windows go through `window_stats` in chunks of about this many prices (1 MiB per temporary
array): small enough to stay in cache, which makes a day of 1s bars five times faster than one
call over every window."""


def pair_stat_table(
    ts: Sequence[int] | npt.ArrayLike,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    window: int,
    method: Method = "ols",
    kalman_delta: float = DEFAULT_KALMAN_DELTA,
    adf_rows: Sequence[bool] | npt.ArrayLike | None = None,
    start: int = 0,
    stop: int | None = None,
    chunk_values: int = CHUNK_VALUES,
) -> Table[PairStat]:
    """The `PairStat` of each bar `i` in `[start, stop)` of two aligned close series, as columns.

    Bar `i` uses the window of bars `max(0, i - window + 1) .. i`; bars with fewer than
    `MIN_BARS` bars so far give nothing. `adf_rows[i]` true adds the stationarity fields. The
    windows go through `window_stats` about `chunk_values` prices at a time.
    """
    times, prices_a, prices_b = _check_series(ts, a, b, window)
    stop = len(times) if stop is None else min(stop, len(times))
    wanted_adf = (
        np.zeros(len(times), dtype=bool) if adf_rows is None else np.asarray(adf_rows, dtype=bool)
    )
    first = max(start, MIN_BARS - 1)
    rows = np.arange(first, max(first, stop))
    sizes = np.minimum(rows + 1, window)
    columns = {name: np.full(len(rows), np.nan) for name in _WINDOW_FIELDS}

    def put(at: slice, result: WindowStats) -> None:
        for name in _WINDOW_FIELDS:
            columns[name][at] = getattr(result, name)

    full = np.flatnonzero(sizes == window)
    if len(full):
        view_a = sliding_window_view(prices_a, window)
        view_b = sliding_window_view(prices_b, window)
        returns_a = sliding_window_view(log_returns(prices_a), window - 1)
        returns_b = sliding_window_view(log_returns(prices_b), window - 1)
        step = max(1, chunk_values // window)
        for lo in range(int(full[0]), int(full[-1]) + 1, step):
            hi = min(lo + step, int(full[-1]) + 1)
            first_window = int(rows[lo]) - window + 1
            chunk = slice(first_window, first_window + hi - lo)
            returns = (returns_a[chunk], returns_b[chunk])
            stats = window_stats(
                view_a[chunk], view_b[chunk], method, kalman_delta, returns=returns
            )
            put(slice(lo, hi), stats)
    for position in np.flatnonzero(sizes < window).tolist():
        n = int(rows[position]) + 1
        stats = window_stats(prices_a[None, :n], prices_b[None, :n], method, kalman_delta)
        put(slice(position, position + 1), stats)
    tests = {name: np.full(len(rows), np.nan) for name in STATIONARITY_FIELDS}
    for position in np.flatnonzero(wanted_adf[rows]).tolist():
        row, n = int(rows[position]), int(sizes[position])
        lo = row - n + 1
        beta = float(columns["beta"][position])
        found = stationarity(prices_a[lo : row + 1], prices_b[lo : row + 1], beta)
        for name, value in found.values().items():
            tests[name][position] = value
    return Table(
        PairStat,
        {
            "ts": times[rows],
            "price_a": prices_a[rows],
            "price_b": prices_b[rows],
            **columns,
            "window": np.full(len(rows), window, dtype=np.int64),
            "n": sizes.astype(np.int64),
            "method": np.full(len(rows), method, dtype=object),
            **tests,
        },
    )


class StatOptions(TypedDict, total=False):
    """`pair_stat_table`'s keywords besides `window`."""

    method: Method
    kalman_delta: float
    adf_rows: Sequence[bool] | npt.ArrayLike | None
    start: int
    stop: int | None
    chunk_values: int


def pair_stats(
    ts: Sequence[int] | npt.ArrayLike,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    window: int,
    **options: Unpack[StatOptions],
) -> list[PairStat]:
    """`pair_stat_table` as records."""
    return list(pair_stat_table(ts, a, b, window=window, **options))


def stats_frame(stats: Sequence[PairStat]) -> pd.DataFrame:
    """A table of `PairStat`s, one column per field; absent stationarity fields are NaN."""
    columns = [field.name for field in fields(PairStat)]
    records: list[dict[str, Any]] = [
        {name: getattr(stat, name) for name in columns} for stat in stats
    ]
    frame = pd.DataFrame.from_records(records, columns=columns)
    optional = list(STATIONARITY_FIELDS)
    frame[optional] = frame[optional].astype("float64")
    return frame


def pair_stats_frame(
    ts: Sequence[int] | npt.ArrayLike,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    window: int,
    method: Method = "ols",
    kalman_delta: float = DEFAULT_KALMAN_DELTA,
    adf_every: int = 0,
) -> pd.DataFrame:
    """`pair_stats` as a table, for analysing an uploaded CSV of two aligned close series.

    `adf_every = k > 0` computes the stationarity fields on every k-th bar and on the last one.
    """
    if adf_every < 0:
        raise ValueError(f"adf_every must be 0 (never) or more, got {adf_every}")
    length = len(np.asarray(ts))
    rows = np.zeros(length, dtype=bool)
    if adf_every and length:
        rows[adf_every - 1 :: adf_every] = True
        rows[-1] = True
    stats = pair_stats(
        ts, a, b, window=window, method=method, kalman_delta=kalman_delta, adf_rows=rows
    )
    return stats_frame(stats)
