"""Publishing: the Redis Function path, Redis going away mid-stream, and the bounded queue."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from services.ingestor.backfiller import encode_backfill
from services.ingestor.binance import TickRow
from services.ingestor.gaps import Gap
from services.ingestor.library import LIBRARY
from services.ingestor.publisher import encode_batch, encode_gaps
from services.ingestor.service import Ingestor
from shared import keys
from shared.health import Health
from shared.redis_io import Redis, client
from shared.schemas import Tick
from testkit.binance_ws import BinanceServer, frame_bytes, trade_event
from testkit.polling import eventually
from testkit.processes import RedisProcess
from tests.ingestor_support import events, ingestor_settings, running_ingestor, stream_ticks


def trades(ids: range) -> list[bytes]:
    return [
        frame_bytes(trade_event("BTCUSDT", i, 1_700_000_000_000 + i, "87000.5", "0.010"))
        for i in ids
    ]


def row(trade_id: int, symbol: str = "BTCUSDT") -> TickRow:
    return TickRow(1_700_000_000_000 + trade_id, symbol, "87000.5", "0.010", trade_id, "buy", 1)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server this test may stop and start again (with its append-only file)."""
    server = RedisProcess(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    async with BinanceServer() as running:
        yield running


SYMBOLS = ("BTCUSDT", "ETHUSDT")
INDEX = {"BTCUSDT": 1, "ETHUSDT": 2}


async def call(redis: Redis, rows: list[TickRow], gaps: tuple[Gap, ...] = ()) -> list[int]:
    streams = [*(keys.ticks(s) for s in SYMBOLS), *(keys.gaps(s) for s in SYMBOLS)]
    payload = encode_batch(rows, INDEX)
    reply = await redis.fcall(
        keys.PUBLISH_TICKS, 4, *streams, "1000", payload, encode_gaps(gaps, INDEX)
    )
    return [int(n) for n in reply]


async def test_the_function_appends_a_batch_in_order_and_never_twice(redis_client: Redis) -> None:
    await redis_client.function_load(LIBRARY, replace=True)
    batch = [row(1), row(2), row(1, "ETHUSDT"), row(3)]
    assert await call(redis_client, batch) == [3, 0, 1, 0]
    # The same batch again (a retry after a lost reply), and an overlapping one.
    assert await call(redis_client, batch) == [0, 3, 0, 1]
    assert await call(redis_client, [row(3), row(4), row(2, "ETHUSDT")]) == [1, 1, 1, 0]
    btc = await stream_ticks(redis_client, "BTCUSDT")
    assert [t.trade_id for t in btc] == [1, 2, 3, 4]
    assert btc[0].to_fields() == {
        "ts": "1700000000001", "symbol": "BTCUSDT", "price": "87000.5", "size": "0.010",
        "trade_id": "1", "side": "buy", "recv_ts": "1",
    }  # fmt: skip
    assert [t.trade_id for t in await stream_ticks(redis_client, "ETHUSDT")] == [1, 2]


async def test_the_function_records_the_gaps_of_the_batch(redis_client: Redis) -> None:
    await redis_client.function_load(LIBRARY, replace=True)
    gap = Gap("ETHUSDT", 5, 9, 1_700_000_000_004, 1_700_000_000_010)
    assert await call(redis_client, [row(4, "ETHUSDT"), row(10, "ETHUSDT")], [gap]) == [0, 0, 2, 0]
    assert await redis_client.hgetall(keys.gaps("ETHUSDT")) == {
        "5": "9 1700000000004 1700000000010"
    }
    assert await redis_client.hlen(keys.gaps("BTCUSDT")) == 0


async def test_the_backfill_function_adds_once_and_moves_the_gap_records_on(
    redis_client: Redis,
) -> None:
    await redis_client.function_load(LIBRARY, replace=True)
    stream, records = keys.backfill("BTCUSDT"), keys.gaps("BTCUSDT")
    await redis_client.hset(records, mapping={"5": "9 1 2", "20": "30 3 4"})

    async def fill(ticks: list[Tick], through: int) -> list[int]:
        rows = encode_backfill(ticks)
        reply = await redis_client.fcall(
            keys.PUBLISH_BACKFILL, 2, stream, records, "1000", rows, str(through),
            str(through + 1),
        )  # fmt: skip
        return [int(n) for n in reply]

    ticks = [Tick(1, "BTCUSDT", "1", "1", i, "buy", 2, i + 1, "rest-agg") for i in (5, 7)]
    assert await fill(ticks, 8) == [2, 0]
    assert await redis_client.hgetall(records) == {"9": "9 1 2", "20": "30 3 4"}
    assert await fill(ticks, 8) == [0, 2]  # a retry adds nothing
    assert await fill([], 25) == [0, 0]
    assert await redis_client.hgetall(records) == {"26": "30 3 4"}
    assert await fill([], 30) == [0, 0]
    assert await redis_client.hlen(records) == 0
    assert await redis_client.xlen(stream) == 2


async def test_the_function_caps_streams_with_maxlen(redis_client: Redis) -> None:
    await redis_client.function_load(LIBRARY, replace=True)
    for start in range(0, 5_000, 500):
        await call(redis_client, [row(i) for i in range(start + 1, start + 501)])
    length = await redis_client.xlen(keys.ticks("BTCUSDT"))
    assert 1_000 <= length < 2_000


def test_batch_encoding_is_one_json_array_of_strings() -> None:
    encoded = orjson.loads(encode_batch([row(7)], {"BTCUSDT": 1}))
    assert encoded == [[1, "1700000000007", "BTCUSDT", "87000.5", "0.010", "7", "buy", "1"]]


async def test_redis_restarted_mid_stream_loses_nothing(
    own_redis: RedisProcess, server: BinanceServer
) -> None:
    settings = ingestor_settings(
        own_redis.url, server, symbols="btcusdt", binance_stale_timeout_s=30
    )
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        await server.send("btcusdt@trade", trades(range(1, 301)))
        assert await eventually(lambda: run.state("BTCUSDT").published == 300)
        own_redis.stop()
        await server.send("btcusdt@trade", trades(range(301, 601)))
        assert await eventually(lambda: run.state("BTCUSDT").ticks == 600)
        assert await eventually(lambda: not run.ingestor.publisher.reachable)
        assert run.counters["redis"] == "away" and run.health.status == "degraded"
        assert run.counters["queued:BTCUSDT"] == 300
        own_redis.start()
        await server.send("btcusdt@trade", trades(range(601, 701)))
        assert await eventually(lambda: run.state("BTCUSDT").published == 700)
        assert run.counters["queued:BTCUSDT"] == 0
    redis = client(own_redis.url)
    try:
        ticks = await stream_ticks(redis, "BTCUSDT")
        assert [t.trade_id for t in ticks] == list(range(1, 701))
        back = await events(redis, "redis_back")
        assert len(back) == 1
        waiting = re.search(r"; (\d+) ticks were waiting$", back[0].detail)
        assert waiting and 300 <= int(waiting.group(1)) <= 400, back[0].detail
    finally:
        await redis.aclose()


async def test_a_full_queue_drops_the_oldest_and_says_how_many(
    own_redis: RedisProcess, server: BinanceServer
) -> None:
    settings = ingestor_settings(
        own_redis.url, server, symbols="btcusdt", ingest_queue_size=100, ingest_batch=50,
        binance_stale_timeout_s=30,
    )  # fmt: skip
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        await server.send("btcusdt@trade", trades(range(1, 11)))
        assert await eventually(lambda: run.state("BTCUSDT").published == 10)
        own_redis.stop()
        await server.send("btcusdt@trade", trades(range(11, 311)))
        assert await eventually(lambda: run.state("BTCUSDT").ticks == 310)
        counters = run.counters
        assert counters["overflowed:BTCUSDT"] == 200 and counters["queue_depth"] == 100
        assert "tick queue overflowing" in counters["problem"]
        own_redis.start()
        assert await eventually(lambda: run.state("BTCUSDT").published == 110)
        assert await eventually(lambda: not run.ingestor.intake.overflowing)
    redis = client(own_redis.url)
    try:
        ids = [t.trade_id for t in await stream_ticks(redis, "BTCUSDT")]
        assert len(ids) == 110 and ids == sorted(ids)
        assert ids[:10] == list(range(1, 11)) and ids[-1] == 310
        overflow = [e.detail for e in await events(redis, "overflow")]
        assert overflow[0].startswith("tick queue full (100 ticks)")
        assert overflow[1].startswith("overflow over: lost 200 ticks: BTCUSDT 200 (ids ")
        assert await events(redis, "gap") == []  # the loss is reported as overflow, not a gap
    finally:
        await redis.aclose()


async def test_a_publisher_that_fails_stops_the_ingestor_with_the_reason(redis_url: str) -> None:
    def explode(rows: object) -> None:
        raise ValueError("publisher bug")

    async with BinanceServer() as server:
        settings = ingestor_settings(redis_url, server, symbols="btcusdt")
        ingestor = Ingestor(settings, asyncio.Event(), on_published=explode)
        serving = asyncio.create_task(ingestor.serve(Health("ingestor")))
        await server.wait_for("btcusdt@trade")
        await server.send("btcusdt@trade", trades(range(1, 4)))
        with pytest.raises(RuntimeError, match="the publisher failed") as failure:
            await asyncio.wait_for(serving, 10)
        assert isinstance(failure.value.__cause__, ValueError)


async def test_a_stopping_ingestor_keeps_saying_so(redis_url: str) -> None:
    async with BinanceServer() as server:
        settings = ingestor_settings(redis_url, server, symbols="btcusdt")
        async with running_ingestor(settings) as running:
            await server.wait_for("btcusdt@trade")
            running.health.status = "stopping"
            running.ingestor._update(running.health)
            assert running.health.status == "stopping"
