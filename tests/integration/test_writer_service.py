"""The writer against a real redis-server and a real SQLite file: groups, pending entries, claims,
dead letters, SQLite refusing, lag, shutdown."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from pathlib import Path

import orjson
import pandas as pd
import redis

from services.writer.consumer import TRIMMED, TickStreams
from services.writer.service import GATHER_S
from shared import keys
from shared.schemas import DEADLETTER_FIELDS, Tick
from testkit.polling import eventually
from testkit.recorded import recorded_ticks
from testkit.streams import publish
from tests.writer_support import (
    BAD_ENTRIES,
    Published,
    count_rows,
    group_pending,
    publish_bad,
    running_writer,
    stored_ticks,
    with_replays,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _expected(ticks: list[Tick]) -> pd.DataFrame:
    return Published(ticks, 0).unique()


async def _all_stored(
    client: redis.Redis, sqlite_path: Path, rows: int, symbols: list[str] = SYMBOLS
) -> None:
    """Wait until SQLite holds `rows` ticks and the group has nothing pending."""
    assert await eventually(lambda: count_rows(sqlite_path) == rows)
    assert await eventually(lambda: group_pending(client, symbols) == 0)


async def _crash_after_reading(
    redis_url: str, consumer: str, count: int, symbols: list[str] = SYMBOLS
) -> int:
    """A consumer that reads `count` entries of each stream and dies before acknowledging."""
    crashed = TickStreams(redis_url, consumer, symbols)
    await crashed.ensure_groups()
    taken = await crashed.read(pending=False, count=count, block_ms=None)
    await crashed.close()
    return len(taken)


async def test_ticks_published_before_the_first_start_are_stored_once(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    ticks = recorded_ticks(6_000)
    published = list(with_replays(ticks, every=10))
    publish(sync_redis, published)
    async with running_writer(redis_url, sqlite_path, writer_batch_size=500) as ctx:
        assert await eventually(lambda: ctx.health.counters["entries"] == len(published))
        assert await eventually(lambda: ctx.health.counters["lag_entries"] == 0)
        counters = dict(ctx.health.counters)
    stored = stored_ticks(sqlite_path)
    pd.testing.assert_frame_equal(stored, _expected(ticks))
    assert counters["rows_written"] == len(ticks)
    assert counters["duplicates"] == len(published) - len(ticks)
    assert counters["batches"] >= len(published) // 1000
    assert counters["lag_ms"] == 0
    assert counters["last_commit"] > 0
    for symbol in SYMBOLS:
        (group,) = sync_redis.xinfo_groups(keys.ticks(symbol))
        assert group["name"] == keys.WRITER_GROUP
        assert group["pending"] == 0 and group["lag"] == 0


async def test_own_pending_entries_are_finished_first_after_a_crash(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    ticks = recorded_ticks(3_000)
    publish(sync_redis, ticks)
    taken = await _crash_after_reading(redis_url, "w1", 700)
    assert taken == 1_400 and group_pending(sync_redis, SYMBOLS) == 1_400
    async with running_writer(redis_url, sqlite_path, writer_consumer="w1") as ctx:
        await _all_stored(sync_redis, sqlite_path, len(ticks))
        assert ctx.health.counters["recovered"] == 1_400
        assert ctx.health.counters["claimed"] == 0
    pd.testing.assert_frame_equal(stored_ticks(sqlite_path), _expected(ticks))


async def test_entries_a_stuck_consumer_left_are_claimed_and_it_is_forgotten(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    """Its liveness key is still there (alive, but stuck): the idle-based XAUTOCLAIM takes its
    entries over after `WRITER_CLAIM_IDLE_MS`."""
    ticks = recorded_ticks(2_000)
    publish(sync_redis, ticks)
    taken = await _crash_after_reading(redis_url, "host-4242", 300)
    sync_redis.set(keys.writer_alive("host-4242"), "1", px=60_000)
    async with running_writer(
        redis_url, sqlite_path, writer_claim_idle_ms=300, writer_claim_interval_s=0.2
    ) as ctx:
        await _all_stored(sync_redis, sqlite_path, len(ticks))
        assert await eventually(lambda: ctx.health.counters.get("claimed") == taken)
        assert await eventually(
            lambda: all(
                "host-4242" not in {c["name"] for c in sync_redis.xinfo_consumers(s, "writer")}
                for s in map(keys.ticks, SYMBOLS)
            )
        )
    pd.testing.assert_frame_equal(stored_ticks(sqlite_path), _expected(ticks))


async def test_bad_entries_are_dead_lettered_while_good_ones_land(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    ticks = recorded_ticks(4_000)
    async with running_writer(redis_url, sqlite_path, writer_batch_size=200) as ctx:
        publish(sync_redis, ticks[:2_000])
        bad = publish_bad(sync_redis)
        publish(sync_redis, ticks[2_000:])
        await _all_stored(sync_redis, sqlite_path, len(ticks))
        # The ack lands in Redis before the writer resumes to count the batch.
        assert await eventually(lambda: ctx.health.counters.get("entries") == len(ticks) + bad)
        assert ctx.health.counters["deadlettered"] == bad
    letters = sync_redis.xrange(keys.deadletter("writer"))
    assert len(letters) == bad
    reasons = sorted(fields["reason"] for _, fields in letters)
    assert reasons == sorted(
        [
            "missing field 'side'",
            "field 'price' is not a plain decimal: '8e4'",
            "field 'ts' is not an integer 0..2^63-1: 'soon'",
            "field 'side' is not buy or sell: 'up'",
            "field 'symbol' is 'BTCUSDT' on the stream of ETHUSDT",
        ]
    )
    raws = [orjson.loads(fields["raw"]) for _, fields in letters]
    assert sorted(r["fields"]["ts"] for r in raws) == sorted(f["ts"] for _, f, _ in BAD_ENTRIES)
    assert {r["stream"] for r in raws} == {"ticks:BTCUSDT", "ticks:ETHUSDT"}
    pd.testing.assert_frame_equal(stored_ticks(sqlite_path), _expected(ticks))


async def test_dead_letters_are_trimmed_approximately_like_every_other_stream(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    """XADD ... MAXLEN ~ 100: Redis drops whole nodes (100 entries each) only, so a stream kept
    approximately holds between 100 and 200 entries; exact trimming would keep exactly 100.
    (redis-py's `xadd` trims approximately unless told otherwise; the writer now says so.)"""
    pipe = sync_redis.pipeline(transaction=False)
    for n in range(250):
        pipe.xadd(keys.ticks("BTCUSDT"), {"junk": str(n)})
    pipe.execute()
    async with running_writer(redis_url, sqlite_path, maxlen_deadletter=100) as ctx:
        assert await eventually(lambda: ctx.health.counters.get("deadlettered") == 250)
    assert 100 < sync_redis.xlen(keys.deadletter("writer")) < 200
    [(_, newest)] = sync_redis.xrevrange(keys.deadletter("writer"), count=1)
    assert list(newest) == list(DEADLETTER_FIELDS) and newest["reason"].startswith("missing field")


async def test_pending_entries_trimmed_away_are_counted_lost_and_dead_lettered(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    ticks = [t for t in recorded_ticks(400) if t.symbol == "BTCUSDT"]
    publish(sync_redis, ticks[:100])
    await _crash_after_reading(redis_url, "w1", 100, ["BTCUSDT"])
    sync_redis.xtrim(keys.ticks("BTCUSDT"), maxlen=40, approximate=False)
    publish(sync_redis, ticks[100:])
    async with running_writer(
        redis_url, sqlite_path, writer_consumer="w1", symbols=("BTCUSDT",)
    ) as ctx:
        assert await eventually(lambda: count_rows(sqlite_path) == len(ticks) - 60)
        assert await eventually(lambda: group_pending(sync_redis, ["BTCUSDT"]) == 0)
        assert ctx.health.counters["lost"] == 60
    letters = sync_redis.xrange(keys.deadletter("writer"))
    assert [fields["reason"] for _, fields in letters] == [TRIMMED] * 60
    assert set(stored_ticks(sqlite_path)["trade_id"]) == {t.trade_id for t in ticks[60:]}


async def test_a_locked_database_is_retried_without_acking_and_reported(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    ticks = recorded_ticks(1_000)
    async with running_writer(redis_url, sqlite_path, writer_busy_timeout_ms=20) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        other = sqlite3.connect(sqlite_path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        publish(sync_redis, ticks)
        assert await eventually(lambda: int(ctx.health.counters["retries"]) >= 2)
        assert ctx.health.status == "degraded"
        assert "database is locked" in str(ctx.health.counters["last_error"])
        assert group_pending(sync_redis, SYMBOLS) > 0
        other.execute("ROLLBACK")
        other.close()
        await _all_stored(sync_redis, sqlite_path, len(ticks))
        assert await eventually(lambda: ctx.health.status == "ok")
    pd.testing.assert_frame_equal(stored_ticks(sqlite_path), _expected(ticks))


async def test_a_full_disk_is_retried_then_the_batch_lands(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    """SQLITE_FULL for real: the writer's connection may not grow the file past its size."""
    ticks = recorded_ticks(3_000)
    async with running_writer(redis_url, sqlite_path) as ctx:
        assert await eventually(lambda: ctx.health.status == "ok")
        conn = _writer_connection(ctx)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        publish(sync_redis, ticks)
        assert await eventually(lambda: "full" in str(ctx.health.counters["last_error"]))
        assert ctx.health.status == "degraded"
        assert count_rows(sqlite_path) == 0 and group_pending(sync_redis, SYMBOLS) > 0
        conn.execute("PRAGMA max_page_count = 1073741823")
        await _all_stored(sync_redis, sqlite_path, len(ticks))
    assert int(ctx.health.counters["retries"]) >= 1


def _writer_connection(ctx: object) -> sqlite3.Connection:
    """The SQLite connection of the writer running in this process (found through the GC, so the
    service keeps no test hook)."""
    import gc

    from services.writer.store import TickStore

    # `type`, not `isinstance`: the heap holds dead weak proxies, which `isinstance` trips on.
    (store,) = [o for o in gc.get_objects() if type(o) is TickStore]
    return store.conn


async def test_lag_counts_undelivered_and_pending_entries_and_their_age(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    ticks = recorded_ticks(100)
    publish(sync_redis, ticks)
    streams = TickStreams(redis_url, "w1", SYMBOLS)
    await streams.ensure_groups()
    first_ms = min(
        int(sync_redis.xrange(keys.ticks(s), count=1)[0][0].split("-")[0]) for s in SYMBOLS
    )
    lag = await streams.lag()
    assert lag.entries == 100 and lag.ms >= 0
    batch = await streams.read(pending=False, count=10, block_ms=None)
    lag = await streams.lag()
    assert lag.entries == 100
    assert abs(lag.ms - (time.time_ns() // 1_000_000 - first_ms)) < 1_000
    await streams.ack(batch.ids)
    assert (await streams.lag()).entries == 100 - len(batch)
    rest = await streams.read(pending=False, count=1_000, block_ms=None)
    await streams.ack(rest.ids)
    assert await streams.lag() == type(lag)(0, 0)
    await streams.close()


async def test_stop_commits_and_acks_what_was_read(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    ticks = recorded_ticks(20_000)
    async with running_writer(redis_url, sqlite_path, writer_batch_delay_ms=500) as ctx:
        publish(sync_redis, ticks[:10_000])
        assert await eventually(lambda: int(ctx.health.counters["entries"]) > 0)
    delivered = sum(
        int(g["entries-read"]) for s in SYMBOLS for g in sync_redis.xinfo_groups(keys.ticks(s))
    )
    assert group_pending(sync_redis, SYMBOLS) == 0
    assert count_rows(sqlite_path) == delivered > 0


async def test_a_stream_deleted_under_the_writer_gets_its_group_back(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    ticks = recorded_ticks(2_000)
    async with running_writer(redis_url, sqlite_path) as ctx:
        publish(sync_redis, ticks[:1_000])
        assert await eventually(lambda: count_rows(sqlite_path) == 1_000)
        sync_redis.delete(*(keys.ticks(s) for s in SYMBOLS))
        assert await eventually(lambda: ctx.health.status == "degraded", within=5)
        assert await eventually(lambda: ctx.health.status == "ok")
        publish(sync_redis, ticks[1_000:])
        assert await eventually(lambda: count_rows(sqlite_path) == len(ticks))


async def test_a_trickle_of_ticks_is_gathered_into_batches_not_read_one_publish_at_a_time(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    """The ingestor publishes every few milliseconds; while a batch fills, the writer lets
    entries gather between reads instead of waking for each publish (which cost it a quarter
    of a core at 2,000 ticks/s). Every tick still lands."""
    ticks = recorded_ticks(250)
    async with running_writer(redis_url, sqlite_path) as ctx:
        sync_redis.config_resetstat()
        for tick in ticks:
            sync_redis.xadd(keys.ticks(tick.symbol), tick.to_fields())  # type: ignore[arg-type]
            await asyncio.sleep(0.002)
        await _all_stored(sync_redis, sqlite_path, len(ticks))
        reads = int(sync_redis.info("commandstats")["cmdstat_xreadgroup"]["calls"])
        batches = int(ctx.health.counters["batches"])
    # A batch takes one blocking read, then one per `GATHER_S` of its delay, and one more when
    # a sleep ends early (asyncio runs a timer up to its clock resolution early, leaving a
    # sliver of the delay); beyond the batches, the start-up read of the consumer's own pending
    # entries and the idle blocking read at the end.
    per_batch = 1 + math.ceil(0.1 / GATHER_S) + 1
    assert reads <= batches * per_batch + 2 < len(ticks) / 2, (reads, batches)


async def test_backfill_streams_are_stored_like_tick_streams_with_their_ranges(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    """`backfill:<SYMBOL>` holds ticks fetched from REST for gaps: the writer stores them with
    the ids they cover and their source, once, and dead-letters an entry that breaks the
    contract (a range that ends before it starts, an unknown source)."""
    live = [Tick(1_000 + i, "BTCUSDT", "10.5", "1", i, "buy", 2_000) for i in (1, 2, 9, 10)]
    filled = [
        Tick(1_003, "BTCUSDT", "10.6", "0.5", 3, "sell", 3_000, 5, "rest-agg"),
        Tick(1_006, "BTCUSDT", "10.7", "2", 6, "buy", 3_000, None, "rest"),
        Tick(1_007, "BTCUSDT", "10.8", "3", 7, "buy", 3_000, 8, "rest-agg"),
    ]
    for tick in live:
        sync_redis.xadd(keys.ticks("BTCUSDT"), tick.to_fields())  # type: ignore[arg-type]
    for tick in [*filled, filled[0]]:
        sync_redis.xadd(keys.backfill("BTCUSDT"), tick.to_fields())  # type: ignore[arg-type]
    bad = {**filled[0].to_fields(), "trade_id": "20", "last_trade_id": "19"}
    sync_redis.xadd(keys.backfill("BTCUSDT"), bad)  # type: ignore[arg-type]
    sync_redis.xadd(keys.backfill("BTCUSDT"), {**filled[0].to_fields(), "source": "guess"})  # type: ignore[arg-type]
    async with running_writer(redis_url, sqlite_path, symbols="btcusdt") as ctx:
        assert await eventually(lambda: ctx.health.counters["entries"] == 10)
        counters = dict(ctx.health.counters)
    with sqlite3.connect(sqlite_path) as conn:
        rows = conn.execute(
            "SELECT trade_id, last_trade_id, source, size FROM ticks ORDER BY trade_id"
        ).fetchall()
    assert rows == [
        (1, 1, "ws", "1"), (2, 2, "ws", "1"), (3, 5, "rest-agg", "0.5"), (6, 6, "rest", "2"),
        (7, 8, "rest-agg", "3"), (9, 9, "ws", "1"), (10, 10, "ws", "1"),
    ]  # fmt: skip
    assert (counters["rows_written"], counters["duplicates"], counters["deadlettered"]) == (7, 1, 2)
    letters = sync_redis.xrange(keys.deadletter("writer"))
    reasons = [fields["reason"] for _, fields in letters]  # type: ignore[index]
    assert any("'last_trade_id' 19 is below trade_id 20" in r for r in reasons)
    assert any("field 'source' is not one of ws, rest, rest-agg" in r for r in reasons)
    (group,) = sync_redis.xinfo_groups(keys.backfill("BTCUSDT"))
    assert group["pending"] == 0 and group["lag"] == 0


async def test_entries_of_a_writer_whose_liveness_key_is_gone_are_taken_over_at_once(
    redis_url: str, sync_redis: redis.Redis, sqlite_path: Path
) -> None:
    """Two consumers read and died before acknowledging; one of them still has its liveness
    key (it is alive, only slow): the other's entries are stored within a heartbeat, not after
    `WRITER_CLAIM_IDLE_MS`, and the live one's are left to it."""
    ticks = recorded_ticks(4_000)
    publish(sync_redis, ticks)
    dead = await _crash_after_reading(redis_url, "dead-writer", 1_000)
    alive = await _crash_after_reading(redis_url, "slow-writer", 500)
    sync_redis.set(keys.writer_alive("slow-writer"), "1", px=60_000)
    started = time.monotonic()
    async with running_writer(redis_url, sqlite_path, writer_claim_idle_ms=600_000) as ctx:
        assert await eventually(lambda: count_rows(sqlite_path) == len(ticks) - alive)
        took_s = time.monotonic() - started
        counters = dict(ctx.health.counters)
        me = ctx.health.counters["consumer"]
        assert sync_redis.pttl(keys.writer_alive(str(me))) > 0
    assert counters["taken_over"] == dead
    assert took_s < 3
    assert group_pending(sync_redis, SYMBOLS) == alive
    assert not sync_redis.exists(keys.writer_alive(str(me)))  # a clean stop retires the key
