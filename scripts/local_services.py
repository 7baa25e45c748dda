"""`make up` / `make down` helper: run the Procfile under honcho, and stop only that honcho.

`run` records its own pid in `data/honcho.pid`, then becomes honcho (exec, same pid), so Ctrl-C
in the terminal reaches honcho directly. `stop` sends SIGTERM to that pid only after checking it
is still this checkout's honcho (a pid file left by a honcho that is gone may name any process
by now); honcho then stops the four services it started and nothing else: services of other
checkouts, test runs and the like are left alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from shared.config import Settings

PID_FILE = Path("data/honcho.pid")
STOP_WAIT_S = 15.0
"""Honcho gives its services 5 s before it kills them; it is waited for at most this long."""


def honcho_binary() -> str | None:
    beside = Path(sys.executable).parent / "honcho"
    return str(beside) if beside.exists() else shutil.which("honcho")


def redis_cli(redis_url: str) -> str:
    """The `redis-cli` command that reaches the database `redis_url` names (`-n 1` for the
    demo's database 1): the plain recipes in the README read database 0."""
    parts = urlsplit(redis_url)
    command = ["redis-cli"]
    if parts.hostname not in (None, "127.0.0.1", "localhost"):
        command += ["-h", parts.hostname]
    if parts.port not in (None, 6379):
        command += ["-p", str(parts.port)]
    database = parts.path.strip("/") or "0"
    if database != "0":
        command += ["-n", database]
    if parts.username:
        command += ["--user", parts.username]
    if parts.password:
        command.append("--askpass")
    if parts.scheme == "rediss":
        command.append("--tls")
    return " ".join(command)


def run(procfile: str) -> int:
    binary = honcho_binary()
    if binary is None:
        print("services: honcho is not installed; run `make setup`", file=sys.stderr)
        return 1
    cli = redis_cli(os.environ.get("REDIS_URL") or Settings.model_fields["redis_url"].default)
    example = f"{cli} XREVRANGE events + - COUNT 10"
    print(f"services: inspect Redis with `{cli}`, for example `{example}`", flush=True)
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    PID_FILE.write_text(f"{os.getpid()}\n")
    os.execv(binary, [binary, "-f", procfile, "start"])


def _command_line(pid: int) -> str | None:
    """The process's command line; None when there is no such process (or only its zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None
    except FileNotFoundError:
        return None
    except OSError:
        pass  # no /proc (macOS): ask ps
    result = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True)
    return result.stdout.decode().strip() or None


def _working_directory(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def ours(pid: int) -> bool:
    """True when `pid` is a honcho running a Procfile in this directory."""
    command = _command_line(pid)
    if command is None or "honcho" not in command or " start" not in command:
        return False
    cwd = _working_directory(pid)
    return cwd is None or cwd == Path.cwd().resolve()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _command_line(pid) is not None


def stop() -> int:
    if not PID_FILE.exists():
        print("services: not started by `make up`; nothing to stop")
        return 0
    try:
        pid = int(PID_FILE.read_text().strip())
    except ValueError:
        pid = 0
    if pid <= 0 or not ours(pid):
        PID_FILE.unlink(missing_ok=True)
        print("services: the honcho `make up` started is not running any more; nothing to stop")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        print(f"services: honcho (pid {pid}) is still stopping after {STOP_WAIT_S:g} s")
        return 1
    PID_FILE.unlink(missing_ok=True)
    print(f"services: stopped the services `make up` started (honcho, pid {pid})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_services")
    parser.add_argument("action", choices=["run", "stop"])
    parser.add_argument("--procfile", default="Procfile", help="for run (default: Procfile)")
    args = parser.parse_args()
    return run(args.procfile) if args.action == "run" else stop()


if __name__ == "__main__":
    sys.exit(main())
