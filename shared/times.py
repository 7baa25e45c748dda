"""Epoch milliseconds and ISO-8601 UTC text: the one conversion the tools and the dashboard use.

Times are integer epoch milliseconds everywhere. Conversions use integer `timedelta` arithmetic,
never `datetime.timestamp()` floats, and formatting never raises: a time outside the years
1 to 9999 that `datetime` can hold (a corrupt or hand-made record) is shown as its number.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_MS = -62_135_596_800_000
"""0001-01-01T00:00:00Z, the first instant `datetime` holds."""
END_MS = 253_402_300_800_000
"""10000-01-01T00:00:00Z, the first instant after what `datetime` holds."""
_ONE_MS = timedelta(milliseconds=1)
_EPOCH_MS = re.compile(r"[0-9]{1,16}")
ISO_EXAMPLE = "2025-12-16T13:00:00Z"


def to_datetime(ms: int) -> datetime | None:
    """The UTC `datetime` of epoch `ms`; None outside the years 1 to 9999."""
    if not FIRST_MS <= ms < END_MS:
        return None
    return EPOCH + timedelta(milliseconds=ms)


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of `moment` (naive means UTC), sub-millisecond parts cut off."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _ONE_MS


def _out_of_range(ms: int) -> str:
    return f"{ms} ms ({'after the year 9999' if ms >= END_MS else 'before the year 1'})"


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds: `2025-12-16T13:41:38.698Z`; never raises."""
    moment = to_datetime(ms)
    if moment is None:
        return _out_of_range(ms)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def strftime_ms(ms: int, pattern: str) -> str:
    """`ms` in UTC through `strftime(pattern)`; the number itself when out of range."""
    moment = to_datetime(ms)
    return _out_of_range(ms) if moment is None else moment.strftime(pattern)


def parse_time(text: str) -> int:
    """Epoch milliseconds from ISO-8601 (naive means UTC) or from epoch milliseconds, from
    1970 up to the end of the year 9999; `ValueError` with a one-line message otherwise."""
    cleaned = text.strip()
    if _EPOCH_MS.fullmatch(cleaned):
        ms = int(cleaned)
    else:
        try:
            parsed = datetime.fromisoformat(cleaned)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an ISO-8601 time (like {ISO_EXAMPLE}) or epoch milliseconds"
            ) from None
        ms = epoch_ms(parsed)
    if ms < 0:
        raise ValueError(f"{text!r} is before 1970-01-01T00:00:00Z")
    if ms >= END_MS:
        raise ValueError(f"{text!r} is after the year 9999 (as epoch milliseconds)")
    return ms


__all__ = [
    "END_MS",
    "EPOCH",
    "FIRST_MS",
    "epoch_ms",
    "iso_ms",
    "parse_time",
    "strftime_ms",
    "to_datetime",
]
