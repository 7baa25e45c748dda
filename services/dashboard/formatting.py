"""How numbers, prices, times and ages read on the page, and how typed times are parsed."""

from __future__ import annotations

import math
import re
from datetime import datetime

from shared.config import TIMEFRAME_PATTERN
from shared.times import epoch_ms, strftime_ms

DASH = "—"
_SPACE_OR_T = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]00:?00)?$"
)


def price_decimals(value: float) -> int:
    """Decimals a trader expects for a price of this size: 87,123.4 / 2,950.12 / 0.012345."""
    magnitude = abs(value)
    if magnitude >= 10_000:
        return 1
    if magnitude >= 100:
        return 2
    if magnitude >= 1:
        return 4
    if magnitude == 0:
        return 2
    return min(8, 4 - math.floor(math.log10(magnitude)))


def fmt_price(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:,.{price_decimals(value)}f}"


def fmt_number(value: float | None, decimals: int = 3) -> str:
    """A statistic: fixed decimals, scientific when very small or large, a dash when missing."""
    if value is None or not math.isfinite(value):
        return DASH
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 10 ** (-decimals) or magnitude >= 1e7):
        return f"{value:.{max(1, decimals - 1)}e}"
    return f"{value:,.{decimals}f}"


def fmt_pvalue(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    if value < 0.0001:
        return "< 0.0001"
    return f"{value:.4f}"


def fmt_count(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:,.0f}"


def fmt_age(age_ms: int | None) -> str:
    """`0.4 s`, `12 s`, `3 min`, `2 h`, `5 d` ago; `never` when there is no time."""
    if age_ms is None:
        return "never"
    seconds = max(0.0, age_ms / 1000)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:.0f} h"
    return f"{seconds / 86_400:.0f} d"


def fmt_duration(seconds: float | None) -> str:
    """A half-life or a span as time: `45 s`, `12.5 min`, `3.2 h`, `4.0 d`."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def clock_utc(ms: int) -> str:
    """`13:41:38` (UTC), for feeds and status lines."""
    return strftime_ms(ms, "%H:%M:%S")


def short_utc(ms: int) -> str:
    """`2025-12-16 13:41:38` (UTC), as the time-range inputs show it."""
    return strftime_ms(ms, "%Y-%m-%d %H:%M:%S")


def parse_utc(text: str) -> int:
    """Epoch ms of a typed UTC time: `2025-12-16 13:41`, `2025-12-16T13:41:38.5Z`, `2025-12-16`.

    Only UTC is accepted (no offset, `Z` or `+00:00`), so what a user types means one instant.
    """
    cleaned = text.strip()
    if not _SPACE_OR_T.match(cleaned):
        raise ValueError(f"{text!r} is not a UTC time like 2025-12-16 13:41:00")
    cleaned = re.sub(r"(Z|[+-]00:?00)$", "", cleaned).replace("T", " ")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date and time") from None
    return epoch_ms(moment)


def plotly_time_ms(value: object) -> int | None:
    """Epoch ms of an axis range end as Plotly reports it (`2025-12-16 13:42:10.5` or a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("T", " "))
        except ValueError:
            return None
        return epoch_ms(moment)
    return None


def tf_label(tf_ms: int) -> str:
    """The shortest timeframe name for a bar length: 1000 -> `1s`, 300000 -> `5m`."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if tf_ms >= size and tf_ms % size == 0:
            label = f"{tf_ms // size}{unit}"
            if TIMEFRAME_PATTERN.match(label):
                return label
    return f"{tf_ms}ms"
