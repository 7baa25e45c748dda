"""Real processes for tests and benchmarks: a private redis-server, service subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import redis

from testkit.polling import wait_until

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A private redis-server on a free port; never the machine's shared one.

    `stop()`/`start()` restart it on the same port (with `appendonly=True` it reloads its AOF),
    so tests can take Redis away mid-stream and bring it back.
    """

    def __init__(self, directory: Path, *, appendonly: bool = False, fsync: str = "always") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run `make setup` "
                "(or scripts/install-system-deps.sh redis)"
            )
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.fsync = fsync
        """`appendfsync` with AOF on: `always` (tests that must lose nothing) or `everysec` (the
        compose file's policy)."""
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync if self.appendonly else "everysec",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        if not wait_until(self.answers, within=10):
            raise RuntimeError(f"redis-server on port {self.port} did not start")
        return self

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        self.process.wait(timeout=10)
        self.process = None

    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def service_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """Environment for a service subprocess: the repo importable, a private Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SQLITE_"))}
    env.update(PYTHONPATH=str(REPO), REDIS_URL=redis_url, HEALTH_INTERVAL_S="0.2")
    env.update(overrides)
    return env


def start_service(
    name: str, env: Mapping[str, str], *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """`python -m services.<name>` as a real process, its output to `log` when given."""
    command = [sys.executable, "-m", f"services.{name}", *args]
    if log is None:
        return subprocess.Popen(command, cwd=REPO, env=dict(env), stdout=subprocess.DEVNULL)
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
