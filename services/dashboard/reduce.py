"""Reducing a trace to the points a screen can show (pure).

MinMaxLTTB (tsdownsample) keeps every bucket's extremes and the shape between them, so a spike
or a band crossing survives the reduction; a gap (NaN) stays a gap. Reduction is for display
only: exports, statistics and zoomed ranges use every bar.
"""

from __future__ import annotations

import numpy as np
from tsdownsample import NaNMinMaxLTTBDownsampler

_DOWNSAMPLER = NaNMinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]


def kept(x: np.ndarray, y: np.ndarray, points: int) -> np.ndarray:
    """Indices (ascending) of the at most `points` points of (x, y) to draw; all when they fit."""
    if len(x) <= points:
        return np.arange(len(x))
    return np.asarray(_DOWNSAMPLER.downsample(x, y, n_out=points), dtype=np.int64)
