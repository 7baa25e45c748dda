"""The writer's settings (bad values: tests/unit/test_config.py) and the CLI's times."""

from __future__ import annotations

import socket

import pytest

from services.writer.service import consumer_name
from services.writer.tools import format_duration, format_time, parse_time
from shared.config import load_settings


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
    ],
)
def test_parse_time_accepts_iso_8601_and_epoch_ms(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["2025-13-01", "yesterday", "12/16/2025", "", "1.5e12", "-5"])
def test_parse_time_rejects_with_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO-8601 time") as caught:
        parse_time(text)
    assert "\n" not in str(caught.value)


def test_format_time_is_iso_utc_with_milliseconds_and_round_trips() -> None:
    assert format_time(1765892498698) == "2025-12-16T13:41:38.698Z"
    assert format_time(1765843200000) == "2025-12-16T00:00:00.000Z"
    for ms in (0, 1, 999, 1765892498698, 4102444800000):
        assert parse_time(format_time(ms)) == ms


def test_durations_read_like_a_person_would_say_them() -> None:
    assert format_duration(12_500) == "12.5s"
    assert format_duration(299_000) == "4m59s"
    assert format_duration(93_784_000) == "1d2h3m4s"


def test_writer_defaults_and_consumer_name() -> None:
    settings = load_settings()
    assert settings.writer_batch_size == 2_000
    assert settings.writer_batch_delay_ms == 100
    assert settings.writer_claim_idle_ms == 30_000
    assert consumer_name(settings).startswith(f"{socket.gethostname()}-")
    assert consumer_name(load_settings(writer_consumer="w1")) == "w1"
