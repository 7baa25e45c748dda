"""Reducing a trace to the points a screen can show (pure).

MinMaxLTTB (tsdownsample) keeps every bucket's extremes and the shape between them, so a spike
or a band crossing survives the reduction; a gap (NaN) stays a gap. Reduction is for display
only: exports, statistics and zoomed ranges use every bar.
"""

from __future__ import annotations

import numpy as np
from tsdownsample import NaNMinMaxDownsampler, NaNMinMaxLTTBDownsampler

_DOWNSAMPLER = NaNMinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]
_EXTREMES = NaNMinMaxDownsampler()  # type: ignore[no-untyped-call]


def kept(x: np.ndarray, y: np.ndarray, points: int) -> np.ndarray:
    """Indices (ascending) of the at most `points` points of (x, y) to draw; all when they fit."""
    if len(x) <= points:
        return np.arange(len(x))
    return np.asarray(_DOWNSAMPLER.downsample(x, y, n_out=points), dtype=np.int64)


def kept_extremes(x: np.ndarray, y: np.ndarray, points: int) -> np.ndarray:
    """Indices (ascending) of at most `points` points keeping each bucket's lowest and highest
    (MinMax) and the first and the last: coarser than `kept`, but the overall extremes always
    survive, however few points there are."""
    inner = max(points - 2 - points % 2, 4)  # MinMax needs two buckets
    if len(x) <= inner + 2:
        return np.arange(len(x))
    picked = np.asarray(_EXTREMES.downsample(x, y, n_out=inner), dtype=np.int64)
    return np.unique(np.concatenate(([0], picked, [len(x) - 1])))
