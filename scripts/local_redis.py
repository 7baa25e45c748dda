"""`make up` / `make down` helper: start a local redis-server when none answers at REDIS_URL.

The server it starts keeps its AOF under `data/redis/` (so a restart loses nothing acknowledged
more than a second before) and its pid in `data/redis/redis.pid`; `stop` shuts down only that one
(the server answering must report that pid in `INFO server`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from shared.config import ConfigError, load_settings

DATA_DIR = Path("data/redis")
PID_FILE = DATA_DIR / "redis.pid"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def start(url: str) -> int:
    if answers(url):
        print(f"redis: using the server already answering at {url}")
        return 0
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        print(
            f"redis: nothing answers at {url} and it is not local; start it first", file=sys.stderr
        )
        return 1
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis: redis-server is not installed; run `make setup`", file=sys.stderr)
        return 1
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    port = parsed.port or 6379
    subprocess.run(
        [
            binary,
            "--port", str(port),
            "--bind", parsed.hostname or "127.0.0.1",
            "--dir", str(DATA_DIR.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "yes",
            "--pidfile", str(PID_FILE.resolve()),
            "--logfile", str((DATA_DIR / "redis.log").resolve()),
        ],
        check=True,
    )  # fmt: skip
    for _ in range(50):
        if answers(url):
            print(f"redis: started redis-server on port {port} (AOF in {DATA_DIR}/)")
            return 0
        time.sleep(0.1)
    print(f"redis: redis-server did not come up; see {DATA_DIR}/redis.log", file=sys.stderr)
    return 1


def stop(url: str) -> int:
    """SHUTDOWN the server `start` started, identified by its pid: a pid file left by a server
    that is gone must not stop whatever Redis answers at the URL now."""
    if not PID_FILE.exists():
        print("redis: not started by `make up`; left alone")
        return 0
    try:
        recorded: int | None = int(PID_FILE.read_text().strip())
    except ValueError:
        recorded = None
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2.0)
    try:
        running = int(client.info("server")["process_id"])
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        PID_FILE.unlink(missing_ok=True)
        print("redis: the server `make up` started is not running any more")
        return 0
    if running != recorded:
        PID_FILE.unlink(missing_ok=True)
        print(
            f"redis: the server answering at {url} (pid {running}) is not the one `make up` "
            f"started (pid {recorded}); left alone"
        )
        return 0
    try:
        client.shutdown()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        pass
    PID_FILE.unlink(missing_ok=True)
    print("redis: stopped the server `make up` started")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_redis")
    parser.add_argument("action", choices=["start", "stop"])
    args = parser.parse_args()
    try:
        url = load_settings().redis_url
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return start(url) if args.action == "start" else stop(url)


if __name__ == "__main__":
    sys.exit(main())
