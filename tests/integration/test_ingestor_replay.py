"""Replay: the shared recorded file, recordings of raw frames, trades CSVs; shift and loop."""

from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path

import orjson
import pytest

from shared.config import Settings
from shared.health import now_ms
from shared.redis_io import Redis
from testkit.binance_ws import frame_bytes, trade_event
from testkit.polling import eventually
from testkit.recorded import RECORDED, market_trades, recorded_rows
from tests.ingestor_support import (
    dead_letters,
    events,
    ingestor_settings,
    running_ingestor,
    stream_ticks,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
FIRST_MS = 1_765_892_498_698
"""The file's first row: 2025-12-16T13:41:38.698Z."""


def replay_settings(redis_url: str, path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"source": "replay", "replay_file": path, "replay_speed": 0}
    return ingestor_settings(redis_url, **{**values, **overrides})


async def replay(redis_url: str, path: Path, **overrides: object) -> dict[str, object]:
    """Replay a file to its end; the health counters then."""
    async with running_ingestor(replay_settings(redis_url, path, **overrides)) as run:
        source = run.ingestor.source
        assert await eventually(lambda: getattr(source, "done", False), within=60)
        assert await eventually(lambda: len(run.ingestor.intake.queue) == 0, within=30)
        return run.counters


def small_collector_file(tmp_path: Path, rows: int) -> Path:
    """The first `rows` rows of the shared file, as the collector wrote them."""
    path = tmp_path / "ticks.ndjson"
    with gzip.open(RECORDED, "rb") as source:
        lines = [next(source) for _ in range(rows)]
    path.write_bytes(b"".join(lines))
    return path


async def test_replay_of_the_shared_file_publishes_exactly_its_market_trades_twice_alike(
    redis_url: str, redis_client: Redis
) -> None:
    counters = await replay(redis_url, RECORDED)
    expected = market_trades()
    first = {s: await stream_ticks(redis_client, s) for s in SYMBOLS}
    for symbol in SYMBOLS:
        want = [(r.ts, r.price, r.size) for r in expected if r.symbol == symbol]
        assert [(t.ts, t.price, t.size) for t in first[symbol]] == want
        assert [t.trade_id for t in first[symbol]] == [
            FIRST_MS * 1000 + i for i in range(len(want))
        ]
        assert counters[f"gaps:{symbol}"] == 0
    assert sum(int(counters[f"non_market:{s}"]) for s in SYMBOLS) == 32
    assert counters["replay_done"] == 1 and counters["replay_percent"] == "100.0"
    assert counters["replay_ticks"] == len(expected)
    assert counters["ticks"] == counters["published"] == len(expected)
    assert len(await events(redis_client, "replay_finished")) == 1

    # Again into the same streams: every trade is known, nothing is added twice.
    counters = await replay(redis_url, RECORDED)
    for symbol in SYMBOLS:
        assert await stream_ticks(redis_client, symbol) == first[symbol]
        assert counters[f"duplicates:{symbol}"] == len(first[symbol])
        assert counters[f"published:{symbol}"] == 0

    # Again into empty streams: the same trades with the same ids.
    await redis_client.flushdb()
    await replay(redis_url, RECORDED)
    for symbol in SYMBOLS:
        again = await stream_ticks(redis_client, symbol)
        assert [(t.trade_id, t.ts, t.price, t.size, t.side) for t in again] == [
            (t.trade_id, t.ts, t.price, t.size, t.side) for t in first[symbol]
        ]


async def test_the_side_of_collector_rows_follows_the_tick_rule(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    path = tmp_path / "rows.ndjson"
    prices = [100, 101, 101, 100.5, 100.5, 102]
    path.write_bytes(
        b"".join(
            orjson.dumps({"symbol": "BTCUSDT", "ts": f"2025-12-16T13:41:38.{i:03d}Z",
                          "price": p, "size": 0.001}) + b"\n"
            for i, p in enumerate(prices)
        )
    )  # fmt: skip
    await replay(redis_url, path)
    ticks = await stream_ticks(redis_client, "BTCUSDT")
    assert [t.price for t in ticks] == ["100", "101", "101", "100.5", "100.5", "102"]
    assert [t.side for t in ticks] == ["buy", "buy", "buy", "sell", "sell", "buy"]


@pytest.mark.parametrize("shift", [True, False])
async def test_looping_replay_gives_distinct_contiguous_passes(
    redis_url: str, redis_client: Redis, tmp_path: Path, shift: bool
) -> None:
    path = small_collector_file(tmp_path, 400)
    rows = [r for r in recorded_rows()[:400] if float(r.price) > 0]
    span = max(r.ts for r in rows) - rows[0].ts + 1
    started = now_ms()
    settings = replay_settings(
        redis_url, path, replay_shift=shift, replay_loop=True, ingest_queue_size=1_000
    )
    async with running_ingestor(settings) as run:
        assert await eventually(lambda: run.counters["replay_pass"] >= 3, within=30)
    btc = [r for r in rows if r.symbol == "BTCUSDT"]
    ticks = await stream_ticks(redis_client, "BTCUSDT")
    assert len(ticks) >= 2 * len(btc)
    ids = [t.trade_id for t in ticks]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    if shift:  # looks live: the first trade is now, its id 1000 x its time
        assert started <= ticks[0].ts <= now_ms()
        assert abs(ids[0] - ticks[0].ts * 1000) < 1000
    else:  # the file's own times and ids
        assert (ticks[0].ts, ids[0]) == (FIRST_MS, FIRST_MS * 1000)
    for k in range(2):
        one_pass = ticks[k * len(btc) : (k + 1) * len(btc)]
        assert [t.price for t in one_pass] == [r.price for r in btc]
        assert [t.ts - ticks[0].ts for t in one_pass] == [r.ts - btc[0].ts + k * span for r in btc]
    assert await events(redis_client, "gap") == []
    assert run.counters["duplicates:BTCUSDT"] == 0


async def test_a_later_shifted_replay_gets_new_ids(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    path = small_collector_file(tmp_path, 200)
    await replay(redis_url, path, replay_shift=True)
    first = [t.trade_id for t in await stream_ticks(redis_client, "ETHUSDT")]
    await asyncio.sleep(0.01)
    await replay(redis_url, path, replay_shift=True)
    both = [t.trade_id for t in await stream_ticks(redis_client, "ETHUSDT")]
    assert len(both) == 2 * len(first) and both[: len(first)] == first
    assert min(both[len(first) :]) > max(first)


async def test_recorded_raw_frames_replay_with_their_ids_and_bad_lines_dead_lettered(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    path = tmp_path / "frames.ndjson.gz"
    frames = [frame_bytes(trade_event("ETHUSDT", 500 + i, 1_700_000_000_000 + i, "2950.1", "0.1"))
              for i in range(5)]  # fmt: skip
    envelope = b'{"stream":"ethusdt@trade","data":' + frames[4] + b"}"
    with gzip.open(path, "wb") as out:
        out.write(b"\n".join([frames[0], frames[1], b"garbage", frames[2], frames[3], envelope]))
    counters = await replay(redis_url, path)
    assert [t.trade_id for t in await stream_ticks(redis_client, "ETHUSDT")] == list(
        range(500, 505)
    )
    assert await eventually(lambda: True)
    letters = await dead_letters(redis_client)
    assert len(letters) == 1 and letters[0]["raw"] == "garbage"
    assert letters[0]["reason"].startswith("frames.ndjson.gz line 3: not JSON")
    assert counters["deadlettered"] == 1


async def test_binance_trades_csv_replays_with_ids_sides_and_times(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    path = tmp_path / "BTCUSDT-trades-2025-12-16.csv"
    path.write_text(
        "id,price,qty,quote_qty,time,is_buyer_maker\n"
        "6905373851,87162.10,0.003,261.4863,1765892498698,true\n"
        "6905373852,87162.20,0.010,871.622,1765892498699000,false\n"
        "6905373853,87162.20,0.010,871.622,1765892498700,maybe\n"
        "6905373854,87162.30,0.500,43581.15,1765892498701,False\n"
    )
    counters = await replay(redis_url, path)
    ticks = await stream_ticks(redis_client, "BTCUSDT")
    assert [(t.trade_id, t.ts, t.price, t.side) for t in ticks] == [
        (6905373851, 1765892498698, "87162.10", "sell"),
        (6905373852, 1765892498699, "87162.20", "buy"),
        (6905373854, 1765892498701, "87162.30", "buy"),
    ]
    assert counters["gaps:BTCUSDT"] == 1 and counters["deadlettered"] == 1


async def test_recorded_pace_is_kept_at_speed_one(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "paced.ndjson"
    path.write_bytes(
        b"\n".join(frame_bytes(trade_event("BTCUSDT", i, 1_700_000_000_000 + 100 * i, "1", "1"))
                   for i in range(1, 8))
    )  # fmt: skip
    started = time.monotonic()
    await replay(redis_url, path, replay_speed=1)
    assert time.monotonic() - started >= 0.6  # the last trade is 600 ms after the first


async def test_the_synthetic_source_publishes_contiguous_trades_of_every_symbol(
    redis_url: str, redis_client: Redis
) -> None:
    settings = ingestor_settings(redis_url, source="synthetic", synthetic_tick_rate=2_000)
    async with running_ingestor(settings) as run:
        assert await eventually(
            lambda: all(run.state(s).published >= 100 for s in SYMBOLS), within=20
        )
        assert run.counters["problem"] == "" and run.health.status == "ok"
    for symbol in SYMBOLS:
        ticks = await stream_ticks(redis_client, symbol)
        ids = [t.trade_id for t in ticks]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert abs(ticks[0].ts - now_ms()) < 60_000
    assert len(await events(redis_client, "synthetic_started")) == 1
