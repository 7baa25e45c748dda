"""`make down` stops what `make up` started and nothing else: not a Redis it found running, not
the services or honcho of another checkout, not whatever process a stale pid file names now."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from testkit.polling import wait_until
from testkit.processes import REPO, RedisProcess, free_port, service_env

VENV = Path(sys.executable).parent.parent
PROCFILE = "sleeper: exec sleep 300\n"
"""A one-process Procfile: what honcho runs does not matter, only who gets signalled."""


def _env(redis_url: str) -> dict[str, str]:
    env = service_env(redis_url)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], cwd: Path, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=_env(redis_url), capture_output=True, text=True, timeout=60
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


class Checkout:
    """A directory with a Procfile where `python -m scripts.local_services run` runs honcho, as
    `make up` does in a checkout."""

    def __init__(self, root: Path, redis_url: str) -> None:
        root.mkdir(parents=True)
        (root / "Procfile").write_text(PROCFILE)
        self.root = root
        self.redis_url = redis_url
        self.log = root / "honcho.log"
        with open(self.log, "wb") as out:
            self.honcho = subprocess.Popen(
                [sys.executable, "-m", "scripts.local_services", "run"],
                cwd=root, env=_env(redis_url), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        assert wait_until(lambda: "started (pid=" in self.log.read_text(), 20), self.log.read_text()
        self.child = int(re.findall(r"started \(pid=(\d+)\)", self.log.read_text())[0])
        port = urlsplit(redis_url).port
        assert f"inspect Redis with `redis-cli -p {port}`" in self.log.read_text()

    def stop(self) -> None:
        if self.honcho.poll() is None:
            self.honcho.terminate()
            self.honcho.wait(timeout=20)


@pytest.fixture
def checkouts(tmp_path: Path) -> Iterator[list[Checkout]]:
    made: list[Checkout] = []
    yield made
    for checkout in made:
        checkout.stop()


def test_make_down_stops_the_honcho_make_up_started_and_not_another_checkouts(
    tmp_path: Path, checkouts: list[Checkout]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers: no Redis was started here
    mine = Checkout(tmp_path / "mine", url)
    checkouts.append(mine)
    other = Checkout(tmp_path / "other", url)
    checkouts.append(other)
    assert (mine.root / "data" / "honcho.pid").read_text().strip() == str(mine.honcho.pid)
    result = _run(["make", "-f", str(REPO / "Makefile"), "down", f"VENV={VENV}"], mine.root, url)
    assert result.returncode == 0, result.stderr
    assert (
        f"stopped the services `make up` started (honcho, pid {mine.honcho.pid})" in result.stdout
    )
    assert "redis: not started by `make up`; left alone" in result.stdout
    assert mine.honcho.wait(timeout=5) is not None
    assert wait_until(lambda: not _alive(mine.child), 5)
    assert not (mine.root / "data" / "honcho.pid").exists()
    assert other.honcho.poll() is None and _alive(other.child)
    again = _run([sys.executable, "-m", "scripts.local_services", "stop"], mine.root, url)
    assert again.returncode == 0 and "nothing to stop" in again.stdout


def test_a_stale_honcho_pid_file_does_not_signal_the_process_it_names_now(
    tmp_path: Path,
) -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "honcho.pid").write_text(f"{bystander.pid}\n")
        result = _run([sys.executable, "-m", "scripts.local_services", "stop"], tmp_path, "")
        assert result.returncode == 0, result.stderr
        assert "is not running any more; nothing to stop" in result.stdout
        assert bystander.poll() is None
        assert not (tmp_path / "data" / "honcho.pid").exists()
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


def test_a_stale_redis_pid_file_does_not_shut_down_a_redis_it_did_not_start(
    tmp_path: Path,
) -> None:
    foreign = RedisProcess(tmp_path / "foreign").start()
    try:
        assert foreign.process is not None
        pid_file = tmp_path / "data" / "redis" / "redis.pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{foreign.process.pid + 1}\n")  # the server make up started is gone
        result = _run([sys.executable, "-m", "scripts.local_redis", "stop"], tmp_path, foreign.url)
        assert result.returncode == 0, result.stderr
        assert f"(pid {foreign.process.pid}) is not the one `make up` started" in result.stdout
        assert foreign.answers()
        assert redis.Redis.from_url(foreign.url).info("server")["process_id"] == foreign.process.pid
        assert not pid_file.exists()
    finally:
        foreign.stop()
