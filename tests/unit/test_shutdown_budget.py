"""The shutdown budget adds up: every wait a stopping service can be in ends inside Compose's
`stop_grace_period` (tests/e2e/test_shutdown.py shows it with a hanging Redis)."""

from __future__ import annotations

from typing import Any

import yaml

from services.analytics import service as analytics
from services.writer import service as writer
from shared import runtime
from shared.heartbeat import FINAL_PUBLISH_S
from shared.redis_io import SOCKET_TIMEOUT_S
from testkit.processes import REPO


def _grace_s() -> float:
    compose: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    text = str(compose["x-service"]["stop_grace_period"])
    assert text.endswith("s"), text
    return float(text[:-1])


def test_every_xreadgroup_block_ends_before_the_socket_timeout() -> None:
    for block_ms in (writer.BLOCK_MS, analytics.BLOCK_MS):
        assert 0 < block_ms <= 1_000 < SOCKET_TIMEOUT_S * 1000


def test_grace_final_record_and_close_fit_in_compose_stop_grace_period() -> None:
    assert SOCKET_TIMEOUT_S < runtime.SHUTDOWN_GRACE_S
    assert FINAL_PUBLISH_S <= runtime.FINAL_RECORD_S
    assert runtime.SHUTDOWN_GRACE_S + 2 * runtime.FINAL_RECORD_S < _grace_s() == 10.0
