"""`python -m services.dashboard` that cannot listen says why in one line and exits non-zero,
without a traceback: a DASH_HOST that is no address here (exit 2), a port in use (exit 1)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from testkit.processes import REPO, free_port, service_env


def _run_dashboard(redis_url: str, host: str, port: int) -> subprocess.CompletedProcess[str]:
    env = service_env(redis_url, DASH_HOST=host, DASH_PORT=str(port))
    return subprocess.run(
        [sys.executable, "-m", "services.dashboard"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if " ERROR " in line]


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("no-such-host.invalid", "'no-such-host.invalid' is not a host name or address"),
        ("192.0.2.1", "'192.0.2.1' is no address of this machine"),
    ],
)
def test_a_host_it_cannot_listen_on_is_one_line_and_exit_2(
    redis_url: str, host: str, reason: str
) -> None:
    port = free_port()
    result = _run_dashboard(redis_url, host, port)
    assert result.returncode == 2, result.stderr
    [line] = _errors(result)
    assert f"cannot listen on DASH_HOST={host!r} DASH_PORT={port}: {reason}" in line


def test_a_port_in_use_is_one_line_and_exit_1(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_dashboard(redis_url, "127.0.0.1", port)
    assert result.returncode == 1, result.stderr
    [line] = _errors(result)
    assert f"DASH_PORT={port}: the port is in use (another dashboard? set DASH_PORT)" in line
