"""The shared Redis helpers against a real redis-server: groups, health, events, dead letters."""

from __future__ import annotations

import asyncio

import pytest

from shared import keys
from shared.events import MAX_RAW_BYTES, dead_letter, emit_event
from shared.health import Health, is_fresh, now_ms
from shared.heartbeat import heartbeat
from shared.redis_io import Redis, RedisUnavailable, connect, decoded, ensure_group
from testkit.processes import free_port


async def test_ensure_group_creates_once_and_reads_from_the_start(redis_client: Redis) -> None:
    stream = keys.ticks("BTCUSDT")
    await redis_client.xadd(stream, {"ts": "1"})
    assert await ensure_group(redis_client, stream, keys.WRITER_GROUP) is True
    assert await ensure_group(redis_client, stream, keys.WRITER_GROUP) is False
    reply = await redis_client.xreadgroup(keys.WRITER_GROUP, "c1", {stream: ">"}, count=10)
    assert [fields for _, fields in reply[0][1]] == [{"ts": "1"}]


async def test_ensure_group_creates_a_missing_stream(redis_client: Redis) -> None:
    await ensure_group(redis_client, keys.ticks("ETHUSDT"), keys.ANALYTICS_GROUP)
    groups = await redis_client.xinfo_groups(keys.ticks("ETHUSDT"))
    assert [group["name"] for group in groups] == ["analytics"]


async def test_heartbeat_publishes_counters_then_stopped(redis_client: Redis) -> None:
    health = Health("writer")
    health.status = "ok"
    health.incr("rows", 5)
    stop = asyncio.Event()
    beating = asyncio.create_task(heartbeat(redis_client, health, 0.05, stop))
    await asyncio.sleep(0.2)
    record = decoded(await redis_client.hgetall("health:writer"))
    assert record["status"] == "ok"
    assert record["rows"] == "5"
    assert is_fresh(record, max_age_ms=1_000)
    stop.set()
    await beating
    record = decoded(await redis_client.hgetall("health:writer"))
    assert record["status"] == "stopped"
    assert not is_fresh(record, max_age_ms=1_000)


def test_is_fresh_needs_a_recent_update_and_a_live_status() -> None:
    at = now_ms()
    assert is_fresh({"status": "ok", "updated": str(at - 100)}, 1_000, at)
    assert is_fresh({"status": "degraded", "updated": str(at)}, 1_000, at)
    assert not is_fresh({"status": "ok", "updated": str(at - 5_000)}, 1_000, at)
    assert not is_fresh({"status": "starting", "updated": str(at)}, 1_000, at)
    assert not is_fresh({"status": "ok", "updated": "soon"}, 1_000, at)
    assert not is_fresh({}, 1_000, at)


async def test_events_are_capped_and_carry_the_contract_fields(redis_client: Redis) -> None:
    for i in range(300):
        assert await emit_event(
            redis_client, "ingestor", "gap", f"ids {i}", symbol="X1", maxlen=100
        )
    length = await redis_client.xlen(keys.EVENTS)
    assert 100 <= length < 300
    _, fields = (await redis_client.xrevrange(keys.EVENTS, count=1))[0]
    assert set(fields) == {"service", "kind", "symbol", "detail", "ts"}
    assert fields["detail"] == "ids 299"


async def test_dead_letter_keeps_raw_input_and_reason_and_cuts_huge_input(
    redis_client: Redis,
) -> None:
    await dead_letter(redis_client, "ingestor", b"\xff{not json", "not JSON", maxlen=100)
    await dead_letter(redis_client, "ingestor", "x" * (MAX_RAW_BYTES + 10), "too big", maxlen=100)
    entries = await redis_client.xrange(keys.deadletter("ingestor"))
    first, second = (fields for _, fields in entries)
    assert first["reason"] == "not JSON"
    assert first["raw"] == "\ufffd{not json"
    assert second["raw"].endswith(f"[cut, {MAX_RAW_BYTES + 10} chars in all]")


async def test_connect_gives_up_with_a_clear_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailable, match="did not answer"):
        await connect(url, attempts=2, delay_s=0.01)
