"""Every service as a real process: starts, writes `health:<service>`, stops cleanly on signals.

Also what `make up` does: the Procfile under honcho, stopped by one Ctrl-C (SIGINT), and the
local Redis helper that starts a server only when none answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from shared import health, keys
from testkit.polling import wait_until
from testkit.processes import REPO, RedisProcess, free_port, service_env, start_service

STOP_WITHIN_S = 10.0
READ_BY_DASHBOARD = {
    "ingestor": (health.TICKS, health.PROBLEM),
    "writer": (health.LAG_ENTRIES, health.LAST_ERROR),
    "analytics": (),  # health.ALERTS_FIRED appears with the first alert
    "dashboard": (),
}
"""Fields of each record that the dashboard's health bar reads, named in `shared.health`."""
OFFLINE = {"SOURCE": "synthetic"}
"""Binance cannot be reached here, and an ingestor that cannot reach its source is `degraded`,
not `ok`: these tests about the service life run it on the synthetic source."""


def _health(url: str, service: str) -> dict[str, str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return client.hgetall(keys.health(service))  # type: ignore[return-value]
    finally:
        client.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("service", keys.SERVICES)
def test_service_reports_health_and_stops_on_signal(
    redis_url: str, tmp_path: Path, service: str, sig: signal.Signals
) -> None:
    env = service_env(
        redis_url, SQLITE_PATH=str(tmp_path / "t.db"), DASH_PORT=str(free_port()), **OFFLINE
    )
    process = start_service(service, env, log=tmp_path / "log")
    try:
        assert wait_until(lambda: _health(redis_url, service).get("status") == "ok", 20), (
            tmp_path / "log"
        ).read_text()
        assert set(READ_BY_DASHBOARD[service]) <= set(_health(redis_url, service))
        check = subprocess.run(
            [sys.executable, "-m", f"services.{service}", "--check"], env=env, cwd=REPO
        )
        assert check.returncode == 0
        started = time.monotonic()
        process.send_signal(sig)
        assert process.wait(timeout=STOP_WITHIN_S) == 0
        assert time.monotonic() - started < STOP_WITHIN_S
        assert _health(redis_url, service)["status"] == "stopped"
        check = subprocess.run(
            [sys.executable, "-m", f"services.{service}", "--check"],
            env=env,
            cwd=REPO,
            capture_output=True,
        )
        assert check.returncode == 1
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("service", keys.SERVICES)
def test_bad_environment_value_is_one_line_and_exit_2(redis_url: str, service: str) -> None:
    env = service_env(redis_url, SYMBOLS="btcusdt,not a symbol")
    result = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{service}: configuration error: SYMBOLS='btcusdt,not a symbol': "
        "'not a symbol' is not a symbol (letters and digits, like BTCUSDT)"
    ]


def test_service_waits_for_redis_then_starts(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis")
    env = service_env(server.url)
    process = start_service("writer", env, log=tmp_path / "log")
    try:
        time.sleep(1.0)
        assert process.poll() is None
        server.start()
        assert wait_until(lambda: _health(server.url, "writer").get("status") == "ok", 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_WITHIN_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
        server.stop()


def test_procfile_under_honcho_starts_all_and_one_ctrl_c_stops_all(
    redis_url: str, tmp_path: Path
) -> None:
    """What `make up` runs after Redis: four services, all healthy, all gone after SIGINT."""
    honcho = Path(sys.executable).parent / "honcho"
    env = service_env(
        redis_url, SQLITE_PATH=str(tmp_path / "t.db"), DASH_PORT=str(free_port()), **OFFLINE
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(tmp_path / "honcho.log", "wb") as log:
        process = subprocess.Popen(
            [str(honcho), "-f", "Procfile", "start"], cwd=REPO, env=env, stdout=log, stderr=log
        )
    try:
        assert wait_until(
            lambda: all(_health(redis_url, s).get("status") == "ok" for s in keys.SERVICES), 30
        ), (tmp_path / "honcho.log").read_text()
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=STOP_WITHIN_S)
        assert time.monotonic() - started < STOP_WITHIN_S
        statuses = {s: _health(redis_url, s)["status"] for s in keys.SERVICES}
        assert statuses == dict.fromkeys(keys.SERVICES, "stopped")
        output = (tmp_path / "honcho.log").read_text()
        assert "SIGKILL" not in output, output
    finally:
        if process.poll() is None:
            process.kill()


def test_local_redis_starts_a_server_only_when_none_answers(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = service_env(url)

    def run(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scripts.local_redis", action],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    started = run("start")
    try:
        assert started.returncode == 0, started.stderr
        assert "started redis-server" in started.stdout
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        again = run("start")
        assert again.returncode == 0 and "already answering" in again.stdout
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0
    assert wait_until(lambda: not _answers(url), 10)


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
    except redis.ConnectionError:
        return False
