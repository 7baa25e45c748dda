"""The writer's settings (bad values: tests/unit/test_config.py) and the CLI's durations
(times: tests/unit/test_shared_times.py)."""

from __future__ import annotations

import socket

from services.writer.service import consumer_name
from services.writer.tools import format_duration
from shared.config import load_settings


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
