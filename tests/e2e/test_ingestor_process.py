"""`python -m services.ingestor` as a real process: shutdown order, `--record`, replay progress."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from shared import keys
from shared.redis_io import client, decoded
from testkit.binance_ws import BinanceServer, frame_bytes, trade_event
from testkit.polling import eventually
from testkit.processes import REPO, RedisProcess, free_port, service_env, start_service
from testkit.recorded import RECORDED, market_trades
from tests.ingestor_support import has_ticks, ingestor_settings, running_ingestor, stream_ticks

STOP_WITHIN_S = 10.0


def trades(ids: range) -> list[bytes]:
    return [
        frame_bytes(trade_event("BTCUSDT", i, 1_700_000_000_000 + i, "87000.5", "0.010"))
        for i in ids
    ]


def live_env(redis_url: str, server: BinanceServer, **extra: str) -> dict[str, str]:
    return service_env(
        redis_url, SOURCE="binance", SYMBOLS="btcusdt", BINANCE_WS_URL=server.base,
        BINANCE_REST_URL=f"http://127.0.0.1:{free_port()}", BINANCE_STALE_TIMEOUT_S="30",
        BINANCE_RECONNECT_BASE_S="0.05", BINANCE_RECONNECT_MAX_S="0.5", **extra,
    )  # fmt: skip


async def wait_exit(process: subprocess.Popen[bytes], within: float) -> int | None:
    try:
        return await asyncio.to_thread(process.wait, within)
    except subprocess.TimeoutExpired:
        return None


async def test_sigterm_closes_the_sockets_then_drains_the_queue_then_exits_0(
    tmp_path: Path,
) -> None:
    redis = RedisProcess(tmp_path / "redis", appendonly=True).start()
    async with BinanceServer() as server:
        log = tmp_path / "ingestor.log"
        process = start_service("ingestor", live_env(redis.url, server), log=log)
        reader = client(redis.url)
        try:
            await server.wait_for("btcusdt@trade", within=20)
            await server.send("btcusdt@trade", trades(range(1, 101)))
            assert await eventually(lambda: has_ticks(reader, "BTCUSDT", 100)), log.read_text()
            redis.stop()
            await server.send("btcusdt@trade", trades(range(101, 301)))
            await asyncio.sleep(0.5)  # let the ingestor read them; they wait in its queue
            process.send_signal(signal.SIGTERM)
            assert await eventually(lambda: server.connection_count("btcusdt@trade") == 0)
            await asyncio.sleep(0.5)
            redis.start()  # back within the grace period: the queue drains into it
            assert await wait_exit(process, STOP_WITHIN_S) == 0, log.read_text()
            await reader.aclose()
            reader = client(redis.url)
            ticks = await stream_ticks(reader, "BTCUSDT")
            assert [t.trade_id for t in ticks] == list(range(1, 301))
            output = log.read_text()
            assert output.index("kind=disconnected") < output.index("queue drained ticks=200")
        finally:
            if process.poll() is None:
                process.kill()
            await reader.aclose()
            redis.stop()


async def test_record_writes_raw_frames_that_replay_to_the_same_ticks(
    redis_url: str, tmp_path: Path
) -> None:
    recording = tmp_path / "frames.ndjson.gz"
    frames: list[bytes | str] = [*trades(range(1, 51)), "not json", *trades(range(51, 61))]
    async with BinanceServer() as server:
        log = tmp_path / "ingestor.log"
        env = live_env(redis_url, server)
        process = start_service("ingestor", env, "--record", str(recording), log=log)
        reader = client(redis_url)
        try:
            await server.wait_for("btcusdt@trade", within=20)
            await server.send_raw("btcusdt@trade", frames)
            assert await eventually(lambda: has_ticks(reader, "BTCUSDT", 60)), log.read_text()
            process.send_signal(signal.SIGTERM)
            assert await wait_exit(process, STOP_WITHIN_S) == 0
            live = await stream_ticks(reader, "BTCUSDT")
            await reader.flushdb()
            settings = ingestor_settings(
                redis_url, source="replay", replay_file=recording, replay_speed=0,
                symbols="btcusdt",
            )  # fmt: skip
            async with running_ingestor(settings) as run:
                assert await eventually(lambda: getattr(run.ingestor.source, "done", False))
                assert await eventually(lambda: run.state("BTCUSDT").published == 60)
                assert run.ingestor.intake.deadlettered == 1
            replayed = await stream_ticks(reader, "BTCUSDT")
            assert [(t.trade_id, t.ts, t.price, t.size, t.side) for t in replayed] == [
                (t.trade_id, t.ts, t.price, t.size, t.side) for t in live
            ]
        finally:
            if process.poll() is None:
                process.kill()
            await reader.aclose()


def test_record_needs_the_live_source(redis_url: str) -> None:
    env = service_env(redis_url, SOURCE="synthetic")
    result = subprocess.run(
        [sys.executable, "-m", "services.ingestor", "--record", "x.ndjson"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "ingestor: --record needs SOURCE=binance, not synthetic"


async def test_replay_shows_progress_in_the_log_and_in_health(
    redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "ingestor.log"
    env = service_env(redis_url, SOURCE="replay", REPLAY_FILE=str(RECORDED), REPLAY_SPEED="0")
    process = start_service("ingestor", env, log=log)
    reader = client(redis_url)
    try:

        async def finished() -> bool:
            health = decoded(await reader.hgetall(keys.health("ingestor")))
            return health.get("replay_done") == "1"

        assert await eventually(finished, within=60), log.read_text()
        health = decoded(await reader.hgetall(keys.health("ingestor")))
        assert health["status"] == "ok" and health["replay_percent"] == "100.0"
        assert int(health["replay_ticks"]) == len(market_trades())
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, STOP_WITHIN_S) == 0
        progress = [line for line in log.read_text().splitlines() if "replay progress" in line]
        assert progress and "percent=100.0" in progress[-1]
        assert f"ticks={len(market_trades())}" in progress[-1]
    finally:
        if process.poll() is None:
            process.kill()
        await reader.aclose()


def test_an_unreadable_replay_file_stops_the_start_with_one_line(
    redis_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    env = service_env(redis_url, SOURCE="replay", REPLAY_FILE=str(notes))
    result = subprocess.run(
        [sys.executable, "-m", "services.ingestor"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"ingestor: REPLAY_FILE: {notes}: not raw frames, collector NDJSON or a trades CSV"
    )
