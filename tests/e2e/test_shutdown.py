"""Stopping when Redis misbehaves: every service exits 0 within compose's 10 s grace even when
Redis hangs (a SIGSTOPped redis-server: connections open, nothing answers), and the writer's last
acknowledgement failing as Redis goes away does not turn a clean stop into a failure."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import redis

from shared import keys
from shared.schemas import Tick
from testkit.polling import wait_until
from testkit.processes import RedisProcess, free_port, service_env, start_service

STOP_WITHIN_S = 10.0
"""Docker Compose's `stop_grace_period`: a service still running then is killed."""


def _status(client: redis.Redis, service: str) -> str | None:
    try:
        return client.hget(keys.health(service), "status")  # type: ignore[return-value]
    except redis.RedisError:
        return None


def test_every_service_stops_within_the_grace_when_redis_hangs(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=2)
    env = service_env(
        server.url,
        SQLITE_PATH=str(tmp_path / "t.db"),
        DASH_PORT=str(free_port()),
        SOURCE="synthetic",
    )
    processes = {
        name: start_service(name, env, log=tmp_path / f"{name}.log") for name in keys.SERVICES
    }
    stopped = False
    try:
        assert wait_until(
            lambda: all(_status(client, name) == "ok" for name in keys.SERVICES), 30
        ), {name: (tmp_path / f"{name}.log").read_text() for name in keys.SERVICES}
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        stopped = True
        time.sleep(0.5)  # in-flight commands of every service are now waiting on Redis
        started = time.monotonic()
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        took: dict[str, float] = {}
        while len(took) < len(processes) and time.monotonic() - started < STOP_WITHIN_S:
            for name, process in processes.items():
                if name not in took and process.poll() is not None:
                    took[name] = round(time.monotonic() - started, 2)
            time.sleep(0.02)
        codes = {name: process.poll() for name, process in processes.items()}
        logs = {name: (tmp_path / f"{name}.log").read_text()[-3000:] for name in keys.SERVICES}
        assert codes == dict.fromkeys(keys.SERVICES, 0), (took, logs)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        if stopped and server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)
        client.close()
        server.stop()


def test_writer_stops_cleanly_when_redis_goes_away_during_its_last_acknowledgement(
    tmp_path: Path,
) -> None:
    """The batch being collected when the stop comes is committed only after Redis is gone (SQLite
    held it back), so its XACK fails: the rows are stored, the entries stay pending for the next
    start, and the writer still exits 0."""
    server = RedisProcess(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    db = tmp_path / "t.db"
    log = tmp_path / "writer.log"
    env = service_env(
        server.url,
        SQLITE_PATH=str(db),
        WRITER_BUSY_TIMEOUT_MS="30000",
        WRITER_BATCH_DELAY_MS="10000",  # the batch stays open, collecting, until the stop
    )
    process = start_service("writer", env, log=log)
    stream = keys.ticks("BTCUSDT")
    lock = None
    try:
        assert wait_until(lambda: _status(client, "writer") == "ok", 20)
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the writer's commit now waits for this transaction
        client.xadd(stream, _tick(1).to_fields())  # type: ignore[arg-type]
        assert wait_until(lambda: client.xpending(stream, keys.WRITER_GROUP)["pending"] == 1, 5)
        process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "stopping" in log.read_text(), 5)
        # Ends the open batch at once; its flush is the one in flight as the loop ends.
        client.xadd(stream, _tick(2).to_fields())  # type: ignore[arg-type]
        time.sleep(0.3)
        server.kill()
        lock.execute("ROLLBACK")
        assert process.wait(timeout=STOP_WITHIN_S) == 0, log.read_text()
        text = log.read_text()
        assert "last batch not acknowledged" in text and "Traceback" not in text, text
        reader = sqlite3.connect(db)
        stored = reader.execute("SELECT trade_id FROM ticks").fetchall()
        reader.close()
        assert (1,) in stored
    finally:
        if lock is not None:
            lock.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        client.close()
        server.stop()


def _tick(trade_id: int) -> Tick:
    ts = 1765892498698 + trade_id
    return Tick(ts, "BTCUSDT", "87162.1", "0.002", trade_id, "buy", ts + 7)
