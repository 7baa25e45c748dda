"""Synthetic ticks never mix with real ones of the same symbol: the ingestor (in Redis) and the
writer (in SQLite) record each symbol's market and refuse, at start, with one line and exit code
2, to add the other market's ticks to a database that holds the symbol already. Real processes,
a private redis-server and a real SQLite file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from services.writer.store import TickStore
from shared import keys
from shared.market import mixed_refusal
from testkit.processes import RedisProcess, service_env, start_service

SYMBOLS = "btcusdt,ethusdt"


def run_until_exit(name: str, env: dict[str, str], log: Path) -> int:
    process = start_service(name, env, log=log)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_the_ingestor_refuses_synthetic_ticks_where_real_ones_are(
    redis_server: RedisProcess, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    sync_redis.hset(keys.MARKETS, "ETHUSDT", "exchange")
    env = service_env(redis_server.url, SOURCE="synthetic", SYMBOLS=SYMBOLS,
                      SQLITE_PATH=str(tmp_path / "t.db"))  # fmt: skip
    log = tmp_path / "ingestor.log"
    assert run_until_exit("ingestor", env, log) == 2
    said = log.read_text()
    assert "this Redis database holds exchange (live or replayed) data of ETHUSDT" in said
    assert "Traceback" not in said
    assert sync_redis.xlen(keys.ticks("BTCUSDT")) == 0, "nothing was published"
    assert sync_redis.hget(keys.MARKETS, "BTCUSDT") is None, "nothing was recorded"


def test_the_writer_refuses_to_store_synthetic_ticks_in_a_file_of_real_ones(
    redis_server: RedisProcess, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "ticks.db"
    store = TickStore.open(path, busy_timeout_ms=1_000)
    assert store.claim_market(["BTCUSDT", "ETHUSDT"], "exchange") is None
    assert store.claim_market(["BTCUSDT"], "exchange") is None  # again: the same market
    store.close()
    env = service_env(redis_server.url, SOURCE="synthetic", SYMBOLS="btcusdt,solusdt",
                      SQLITE_PATH=str(path))  # fmt: skip
    log = tmp_path / "writer.log"
    assert run_until_exit("writer", env, log) == 2
    said = log.read_text()
    assert f"SQLITE_PATH={str(path)!r}: this tick database holds exchange" in said
    assert "data of BTCUSDT;" in said and "Traceback" not in said
    store = TickStore.open(path, busy_timeout_ms=1_000)
    kinds = dict(store.conn.execute("SELECT symbol, kind FROM market_kinds").fetchall())
    store.close()
    assert kinds == {"BTCUSDT": "exchange", "ETHUSDT": "exchange"}, "SOLUSDT was not recorded"


def test_the_refusal_names_the_symbols_of_the_other_market_only() -> None:
    recorded = {"BTCUSDT": "synthetic", "ETHUSDT": "exchange", "SOLUSDT": None}
    said = mixed_refusal(recorded, "exchange", ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "here")
    assert said is not None and said.startswith("here holds synthetic data of BTCUSDT;")
    assert mixed_refusal(recorded, "exchange", ["ETHUSDT", "SOLUSDT"], "here") is None
