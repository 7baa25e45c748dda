"""Epoch milliseconds <-> ISO-8601 UTC (shared/times.py) and stream entry ids (shared/streamids.py):
the conversions the writer's tools and the dashboard share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.streamids import id_ms, id_parts
from shared.times import END_MS, FIRST_MS, epoch_ms, iso_ms, parse_time, strftime_ms, to_datetime


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1765892498698", 1765892498698),
        ("2025-12-16T13:41:38.698Z", 1765892498698),
        ("2025-12-16T13:41:38.698+00:00", 1765892498698),
        ("2025-12-16T14:41:38.698+01:00", 1765892498698),
        ("2025-12-16T13:41:38.698", 1765892498698),
        ("2025-12-16", 1765843200000),
        ("2025-12-16 13:41", 1765892460000),
        (" 2025-12-16T13:41:38.698999Z ", 1765892498698),
        ("0", 0),
        ("9999-12-31T23:59:59.999Z", END_MS - 1),
    ],
)
def test_parse_time_accepts_iso_8601_and_epoch_ms(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["2025-13-01", "yesterday", "12/16/2025", "", "1.5e12", "-5"])
def test_parse_time_rejects_with_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO-8601 time") as caught:
        parse_time(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9999999999999999", "'9999999999999999' is after the year 9999"),
        (str(END_MS), f"'{END_MS}' is after the year 9999"),
        ("1969-12-31T23:59:59Z", "is before 1970-01-01T00:00:00Z"),
        ("0001-01-01", "is before 1970-01-01T00:00:00Z"),
    ],
)
def test_parse_time_refuses_times_outside_1970_to_9999(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text)


def test_iso_ms_is_utc_with_milliseconds_and_round_trips() -> None:
    assert iso_ms(1765892498698) == "2025-12-16T13:41:38.698Z"
    assert iso_ms(1765843200000) == "2025-12-16T00:00:00.000Z"
    assert iso_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert iso_ms(FIRST_MS) == "0001-01-01T00:00:00.000Z"
    for ms in (0, 1, 999, 1765892498698, 4102444800000, END_MS - 1):
        assert parse_time(iso_ms(ms)) == ms


@pytest.mark.parametrize("ms", [END_MS, 9 * 10**15, 2**63 - 1, FIRST_MS - 1, -(2**63)])
def test_formatting_never_raises_outside_what_a_date_can_hold(ms: int) -> None:
    assert iso_ms(ms).startswith(f"{ms} ms (")
    assert strftime_ms(ms, "%H:%M:%S").startswith(f"{ms} ms (")
    assert to_datetime(ms) is None


def test_epoch_ms_is_exact_integer_arithmetic() -> None:
    # 13:41:38.698 as a float timestamp times 1000 gives ...697.99999; integers do not.
    moment = datetime(2025, 12, 16, 13, 41, 38, 698_000, tzinfo=UTC)
    assert epoch_ms(moment) == 1765892498698
    assert epoch_ms(moment.replace(tzinfo=None)) == 1765892498698
    assert epoch_ms(moment.astimezone(timezone(timedelta(hours=-5)))) == 1765892498698
    assert epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)) == -1
    assert to_datetime(1765892498698) == moment
    assert strftime_ms(1765892498698, "%Y-%m-%d %H:%M:%S") == "2025-12-16 13:41:38"


def test_stream_ids_give_their_milliseconds_and_order() -> None:
    assert id_ms("1765892498698-3") == 1765892498698
    assert id_parts("1765892498698-3") == (1765892498698, 3)
    assert id_parts("1765892498698") == (1765892498698, 0)
    assert id_parts("0-0") == (0, 0)
    assert id_parts("9-10") > id_parts("9-9") > id_parts("8-99")


@pytest.mark.parametrize("bad", ["", "-", "abc-1", "12-", "12-x", "1_000-0", " 12-0", "١٢-0"])
def test_malformed_stream_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a stream entry id"):
        id_parts(bad)
