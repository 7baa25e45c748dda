"""Structured log lines carry their context, in text and in JSON."""

from __future__ import annotations

import logging

import orjson

from shared.logs import JsonFormatter, TextFormatter


def _record() -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"msg": "committed %d rows", "args": (5,), "levelname": "INFO", "levelno": 20}
    )
    record.symbol = "BTCUSDT"
    record.lag_ms = 12
    return record


def test_text_line_has_message_and_context() -> None:
    line = TextFormatter("writer").format(_record())
    assert line.endswith("INFO writer committed 5 rows symbol=BTCUSDT lag_ms=12")
    assert line[:4].isdigit() and "Z " in line


def test_json_line_is_one_object_with_context() -> None:
    entry = orjson.loads(JsonFormatter("writer").format(_record()))
    assert entry["msg"] == "committed 5 rows"
    assert (entry["service"], entry["level"]) == ("writer", "INFO")
    assert (entry["symbol"], entry["lag_ms"]) == ("BTCUSDT", 12)
