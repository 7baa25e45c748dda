"""How the dashboard writes prices, statistics, times and ages, and reads typed times."""

from __future__ import annotations

import math

import pytest

from services.dashboard.formatting import (
    DASH,
    clock_utc,
    fmt_age,
    fmt_duration,
    fmt_number,
    fmt_price,
    fmt_pvalue,
    parse_utc,
    plotly_time_ms,
    price_decimals,
    short_utc,
    tf_label,
)
from shared.times import iso_ms

T0 = 1_765_892_498_698  # 2025-12-16T13:41:38.698Z, the first recorded trade


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (87123.46, "87,123.5"),
        (2950.125, "2,950.12"),
        (1.23456789, "1.2346"),
        (0.0123456, "0.012346"),
        (0.000012346, "0.00001235"),
        (0.0, "0.00"),
        (-42.5, "-42.5000"),
    ],
)
def test_prices_get_the_decimals_a_trader_expects(value: float, text: str) -> None:
    assert fmt_price(value) == text


def test_missing_or_non_finite_values_show_a_dash() -> None:
    for formatter in (fmt_price, fmt_number, fmt_pvalue, fmt_duration):
        assert formatter(None) == DASH
        assert formatter(math.nan) == DASH
        assert formatter(math.inf) == DASH
    assert price_decimals(5e-9) == 8


def test_statistics_and_pvalues() -> None:
    assert fmt_number(20.45931, 4) == "20.4593"
    assert fmt_number(-3.2) == "-3.200"
    assert fmt_number(1.5e-6) == "1.50e-06"
    assert fmt_number(123_456_789.0) == "1.23e+08"
    assert fmt_pvalue(0.0213) == "0.0213"
    assert fmt_pvalue(1e-9) == "< 0.0001"


def test_ages_and_durations() -> None:
    assert fmt_age(None) == "never"
    assert fmt_age(400) == "0.4 s"
    assert fmt_age(42_000) == "42 s"
    assert fmt_age(600_000) == "10 min"
    assert fmt_age(3 * 3_600_000) == "3 h"
    assert fmt_age(5 * 86_400_000) == "5 d"
    assert fmt_duration(45) == "45 s"
    assert fmt_duration(750) == "12.5 min"
    assert fmt_duration(4 * 86_400) == "4.0 d"


def test_times_are_iso_8601_utc_with_milliseconds() -> None:
    assert iso_ms(T0) == "2025-12-16T13:41:38.698Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert clock_utc(T0) == "13:41:38"
    assert short_utc(T0) == "2025-12-16 13:41:38"


@pytest.mark.parametrize(
    "text",
    ["2025-12-16 13:41:38.698", "2025-12-16T13:41:38.698Z", " 2025-12-16T13:41:38.698+00:00 "],
)
def test_typed_utc_times_parse(text: str) -> None:
    assert parse_utc(text) == T0


def test_typed_dates_and_minutes_parse() -> None:
    assert parse_utc("2025-12-16") == parse_utc("2025-12-16 00:00:00")
    assert parse_utc("2025-12-16 13:41") == T0 - 38_698


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "is not a UTC time"),
        ("2025-12-16 13:41:00+02:00", "is not a UTC time"),
        ("2025-13-40 10:00", "is not a valid date"),
        ("2025-12-16; DROP TABLE ticks", "is not a UTC time"),
    ],
)
def test_typed_times_that_are_not_utc_times_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_utc(text)


def test_plotly_axis_values_become_epoch_ms() -> None:
    assert plotly_time_ms("2025-12-16 13:41:38.698") == T0
    assert plotly_time_ms("2025-12-16T13:41:38.698") == T0
    assert plotly_time_ms(T0) == T0
    assert plotly_time_ms(True) is None
    assert plotly_time_ms("not a time") is None
    assert plotly_time_ms(math.nan) is None


def test_timeframe_labels() -> None:
    assert tf_label(1_000) == "1s"
    assert tf_label(60_000) == "1m"
    assert tf_label(300_000) == "5m"
    assert tf_label(3_600_000) == "1h"
    assert tf_label(1_500) == "1500ms"
