"""`python -m services.writer` killed with SIGKILL at random moments while 200,000 ticks arrive:
SQLite ends with exactly the unique trades published, none twice; with one writer and with two
in the same group. Bad entries are dead-lettered meanwhile; history bars equal pandas."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import redis

from shared import keys
from shared.history import History
from testkit.polling import wait_until
from testkit.processes import REPO, service_env, start_service
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.writer_support import (
    BAD_ENTRIES,
    Published,
    count_rows,
    group_pending,
    pandas_bars,
    stored_ticks,
    with_replays,
)

TICKS = 200_000
KILLS = 3
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _publish_slowly(client: redis.Redis, published: Published, done: threading.Event) -> None:
    """Publish in chunks (a few seconds in all), the bad entries among them."""
    chunk = 4_000
    bad_at = {chunk * k: n for n, k in enumerate(range(3, 3 + len(BAD_ENTRIES) * 7, 7))}
    for start in range(0, len(published.ticks), chunk):
        if start in bad_at:
            symbol, fields, _ = BAD_ENTRIES[bad_at[start]]
            client.xadd(keys.ticks(symbol), fields)
        publish(client, published.ticks[start : start + chunk])
    done.set()


def _group_done(client: redis.Redis) -> bool:
    groups = [g for s in SYMBOLS for g in client.xinfo_groups(keys.ticks(s))]
    return bool(groups) and all(g["pending"] == 0 and g["lag"] == 0 for g in groups)


def _started(log: Path, since: int) -> bool:
    """The writer started at offset `since` of `log` has logged its start (its signal handlers
    are in place). A writer killed earlier may never have got that far."""
    with log.open("rb") as text:
        text.seek(since)
        return b" INFO writer started " in text.read()


@pytest.mark.parametrize("writers", [1, 2])
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path, writers: int
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    print(f"kill schedule seed {seed}")
    ticks = recorded_ticks(TICKS)
    published = Published(list(with_replays(ticks, every=50)), bad=len(BAD_ENTRIES))
    db = tmp_path / "ticks.db"
    env = service_env(
        redis_url,
        SQLITE_PATH=str(db),
        WRITER_CLAIM_IDLE_MS="500",
        WRITER_CLAIM_INTERVAL_S="0.3",
        WRITER_BATCH_SIZE="1000",
    )
    logs = [tmp_path / f"writer{n}.log" for n in range(writers)]
    starts = [0] * writers  # where each log stood when its current writer was started
    processes = [start_service("writer", env, log=log) for log in logs]
    done = threading.Event()
    publisher = threading.Thread(target=_publish_slowly, args=(sync_redis, published, done))
    publisher.start()
    kills = 0
    try:
        while kills < KILLS * writers or not done.is_set():
            time.sleep(rng.uniform(0.2, 1.0))
            victim = kills % writers
            processes[victim].send_signal(signal.SIGKILL)
            processes[victim].wait(timeout=10)
            kills += 1
            starts[victim] = logs[victim].stat().st_size
            processes[victim] = start_service("writer", env, log=logs[victim])
        publisher.join()
        unique = published.unique()
        assert wait_until(lambda: count_rows(db) == len(unique) and _group_done(sync_redis), 60), (
            f"seed {seed}: {count_rows(db)} rows of {len(unique)}, "
            f"{group_pending(sync_redis, SYMBOLS)} pending\n" + logs[0].read_text()[-3000:]
        )
        # A writer restarted just now may still be importing, before it handles SIGTERM: the
        # graceful stop is asked of writers that have started (their runtime logged so).
        assert wait_until(
            lambda: all(_started(log, since) for log, since in zip(logs, starts, strict=True))
        )
        for process in processes:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    finally:
        done.set()
        publisher.join()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    stored = stored_ticks(db)
    pd.testing.assert_frame_equal(stored, unique)
    assert kills >= KILLS * writers
    assert len(published.ticks) > len(unique) == TICKS

    letters = sync_redis.xrange(keys.deadletter("writer"))
    lettered = {(r["stream"], r["id"]) for r in (orjson.loads(f["raw"]) for _, f in letters)}
    assert len(lettered) == len(BAD_ENTRIES)

    history = History(db)
    for symbol in SYMBOLS:
        mine = unique[unique["symbol"] == symbol].astype({"price": float, "size": float})
        for tf, rule in (("1s", "1s"), ("1m", "1min")):
            bars = history.bars(symbol, tf, 0, 2**62)
            expected = pandas_bars(mine, rule)
            assert len(bars) == len(expected) > 0
            for column in ("start", "trades", "open", "high", "low", "close"):
                np.testing.assert_array_equal(bars[column], expected[column], err_msg=column)
            np.testing.assert_allclose(bars["volume"], expected["volume"], rtol=1e-9)
            np.testing.assert_allclose(bars["vwap"], expected["vwap"], rtol=1e-9)
    history.close()


def test_health_record_carries_the_writer_counters(redis_url: str, tmp_path: Path) -> None:
    env = service_env(redis_url, SQLITE_PATH=str(tmp_path / "t.db"), WRITER_CONSUMER="w7")
    process = start_service("writer", env, log=tmp_path / "log")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert wait_until(lambda: client.hget(keys.health("writer"), "status") == "ok", 20)
        publish(client, recorded_ticks(500))
        assert wait_until(lambda: client.hget(keys.health("writer"), "rows_written") == "500")
        assert wait_until(lambda: client.hget(keys.health("writer"), "lag_entries") == "0")
        record = client.hgetall(keys.health("writer"))
        assert record["consumer"] == "w7"
        assert int(record["last_commit"]) > int(record["started"])
        assert int(record["batches"]) >= 1
        for counter in ("lag_ms", "deadlettered", "retries", "duplicates", "claimed", "lost"):
            assert record[counter] == "0", counter
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        client.close()


def test_a_database_that_cannot_be_opened_stops_the_writer_with_a_clear_line(
    redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    env = service_env(redis_url, SQLITE_PATH=str(tmp_path / "file" / "ticks.db"))
    result = subprocess.run(
        [sys.executable, "-m", "services.writer"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    line = next(x for x in result.stderr.splitlines() if "cannot open the tick database" in x)
    assert f"path={tmp_path / 'file' / 'ticks.db'}" in line and "error=" in line
