"""Structured logging: `key=value` text for people, one JSON object per line for machines.

Pass context with `extra`: `log.info("connected", extra={"symbol": "BTCUSDT"})`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal

import orjson

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    millis = int(record.msecs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{millis:03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-11-25T04:22:02.123Z INFO writer committed rows=1000 lag_ms=12`."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{k}={v}" for k, v in _context(record).items())
        line = f"{_timestamp(record)} {record.levelname} {self.service} {record.getMessage()}"
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `level`, `service`, `msg`, then the context fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "service": self.service,
            "msg": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(service: str, level: str, fmt: Literal["text", "json"]) -> None:
    """Route every logger to stderr in the chosen format; quiet the chattiest libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter(service) if fmt == "text" else JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("websockets", "werkzeug", "waitress.queue"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
