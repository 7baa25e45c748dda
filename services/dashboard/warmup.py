"""What a first render would otherwise pay once, paid when the dashboard starts, in the
background: plotly's figure machinery and statsmodels' imports (about 0.7 s), and the styled
figure of the view a first visit opens on (`figures._styled` keeps it)."""

from __future__ import annotations

import logging
import time

import numpy as np

from services.dashboard import display
from services.dashboard.layout import DEFAULT_K
from services.dashboard.records import Snapshot
from services.dashboard.selection import Selection
from shared import pairstats
from shared.config import Settings, timeframe_ms
from shared.schemas import Bar

log = logging.getLogger(__name__)

BARS = 60


def first_view(settings: Settings) -> Selection:
    """The view the controls show on a first visit (`layout.py`'s defaults)."""
    symbols = settings.symbols
    return Selection(
        mode="live",
        a=symbols[0],
        b=symbols[1] if len(symbols) > 1 else symbols[0],
        tf=settings.timeframes[0],
        window=settings.window,
        method="ols",
        k=DEFAULT_K,
        theme=settings.dash_theme,
    )


def warm(settings: Settings) -> float:
    """Render the first view once on made-up bars (nothing is read or written); the seconds it
    took."""
    started = time.perf_counter()
    view = first_view(settings)
    tf_ms = timeframe_ms(view.tf)
    times = np.arange(BARS, dtype=np.int64) * tf_ms
    walk = np.cumsum(np.random.default_rng(0).normal(0, 1e-3, BARS))
    close_a, close_b = 100 * np.exp(walk), 50 * np.exp(walk[::-1])
    stats = pairstats.pair_stats(
        times, close_a, close_b, window=view.window, adf_rows=times == times[-1]
    )

    def bars(closes: np.ndarray) -> list[tuple[str, Bar]]:
        return [
            (f"{t}-0", Bar(int(t), c, c, c, c, 1.0, c, 1))
            for t, c in zip(times.tolist(), closes.tolist(), strict=True)
        ]

    snap = Snapshot(bars(close_a), bars(close_b), [(f"{s.ts}-0", s) for s in stats])
    display.live_full(settings, view, snap)
    took = time.perf_counter() - started
    log.info("warmed", extra={"seconds": round(took, 3)})
    return took
