"""Gaps back-filled from REST: exact trades with a key, aggregate trades without one.

The local WebSocket and REST servers serve the same exchange, so the test compares what the
ingestor published (`ticks:*` from the socket, `backfill:*` from REST) with the truth, trade id
by trade id and second by second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from shared import keys
from shared.config import Settings
from shared.redis_io import Redis
from shared.schemas import Tick
from testkit.binance_rest import RestServer
from testkit.binance_ws import BinanceServer, frame_bytes, make_trades
from testkit.exchange import Trade, agg_event
from testkit.polling import eventually
from tests.ingestor_support import (
    RunningIngestor,
    dead_letters,
    events,
    ingestor_settings,
    running_ingestor,
    stream_ticks,
)

KEY = "testkey123"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def backfilled(redis: Redis, symbol: str) -> list[Tick]:
    entries = await redis.xrange(keys.backfill(symbol))
    return [Tick.from_fields(fields) for _, fields in entries]


async def coverage(redis: Redis, symbol: str) -> list[int]:
    """Every trade id covered by a published tick, socket and back-fill, duplicates kept."""
    ids = [t.trade_id for t in await stream_ticks(redis, symbol)]
    for tick in await backfilled(redis, symbol):
        ids.extend(range(tick.trade_id, tick.covers_through + 1))
    return sorted(ids)


async def volume_per_second(redis: Redis, symbol: str) -> dict[int, Decimal]:
    volume: dict[int, Decimal] = {}
    for tick in [*await stream_ticks(redis, symbol), *await backfilled(redis, symbol)]:
        second = tick.ts // 1000 * 1000
        volume[second] = volume.get(second, Decimal(0)) + Decimal(tick.size)
    return volume


async def kinds(redis: Redis, kind: str) -> list[str]:
    return [e.detail for e in await events(redis, kind)]


async def drop_and_miss(
    server: BinanceServer, run: RunningIngestor, sent: Sequence[Trade], missed: Sequence[Trade]
) -> None:
    """Deliver `sent`, drop the connection, let the exchange trade `missed` meanwhile, and wait
    for the ingestor to reconnect."""
    await server.publish("BTCUSDT", sent)
    assert await eventually(lambda: run.state("BTCUSDT").ticks == len(sent))
    connects = len(server.connects)
    await server.drop("btcusdt@trade")
    assert missed  # made by the caller on the exchange, never sent
    await server.wait_for_connects(connects + 1)
    await server.wait_for("btcusdt@trade")


async def gap_filled(redis: Redis) -> bool:
    return bool(await kinds(redis, "backfilled") or await kinds(redis, "backfill_failed"))


async def one_gap(
    server: BinanceServer, redis: Redis, settings: Settings, trades: Sequence[Trade],
    missed: slice,
) -> dict[str, Any]:  # fmt: skip
    """Run the ingestor through one gap: deliver the trades before `missed`, drop the
    connection while the exchange trades `missed`, deliver the rest; wait until the gap is
    filled (or given up) and every event is out. The ingestor's counters at the end."""
    async with running_ingestor(settings) as run:
        await server.wait_for(f"{settings.symbols[0].lower()}@trade")
        assert missed.start is not None and missed.stop is not None
        await drop_and_miss(server, run, trades[: missed.start], trades[missed])
        await server.publish("BTCUSDT", trades[missed.stop :])
        assert await eventually(lambda: gap_filled(redis))
        assert await eventually(lambda: run.ingestor.notices.pending == 0)
        return run.counters


@pytest.mark.parametrize("api_key", [KEY, ""], ids=["historicalTrades", "aggTrades"])
async def test_a_reconnect_is_backfilled_and_ids_and_volume_equal_the_truth(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer, api_key: str
) -> None:
    """The drop falls in the middle of taker orders, so aggregates are cut by both edges of the
    gap: with or without a key, every market trade id is covered once, and every second's
    volume equals the exchange's."""
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 300, now_ms() - 5_000, orders=(4, 3, 5))
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_api_key=api_key,
        binance_stale_timeout_s=10,
    )  # fmt: skip
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        cut_in, cut_out = 101, 202  # inside orders of several trades
        assert trades[cut_in - 1].time == trades[cut_in].time
        assert trades[cut_out - 1].time == trades[cut_out].time
        await drop_and_miss(server, run, trades[:cut_in], trades[cut_in:cut_out])
        await server.publish("BTCUSDT", trades[cut_out:])
        assert await eventually(lambda: gap_filled(redis_client))
        assert await eventually(lambda: run.state("BTCUSDT").published == 300 - 101)
    assert await kinds(redis_client, "backfill_failed") == []
    assert await coverage(redis_client, "BTCUSDT") == exchange.market_ids("BTCUSDT")
    assert await volume_per_second(redis_client, "BTCUSDT") == exchange.volume_per_second("BTCUSDT")
    filled = await backfilled(redis_client, "BTCUSDT")
    if api_key:
        assert [t.trade_id for t in filled] == [t.id for t in trades[cut_in:cut_out]]
        assert {t.source for t in filled} == {"rest"}
        assert [(t.price, t.size, t.ts) for t in filled] == [
            (t.price, t.qty, t.time) for t in trades[cut_in:cut_out]
        ]
    else:
        assert {t.source for t in filled} == {"rest-agg"}
        assert len(filled) < cut_out - cut_in  # one tick per aggregate, not per trade
        assert filled[0].trade_id == trades[cut_in].id  # the cut aggregate adds what was missed
        assert filled[-1].covers_through == trades[cut_out - 1].id
    (detail,) = await kinds(redis_client, "backfilled")
    source = "rest" if api_key else "rest-agg"
    assert detail.startswith(f"ids {trades[cut_in].id}..{trades[cut_out - 1].id}: ")
    assert f"ticks from {source}" in detail
    assert await redis_client.hlen(keys.gaps("BTCUSDT")) == 0
    used = {r.path for r in rest.requests}
    assert ("/fapi/v1/historicalTrades" in used) == bool(api_key)
    assert ("/fapi/v1/aggTrades" in used) != bool(api_key)


async def test_an_aggtrade_stream_is_backfilled_by_aggregate_id(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    exchange = server.exchange
    make_trades(exchange, "BTCUSDT", 200, now_ms() - 5_000)
    aggregates = exchange.aggregates("BTCUSDT")
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_stream="aggTrade",
        binance_stale_timeout_s=10,
    )  # fmt: skip
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@aggTrade")
        frames = [frame_bytes(agg_event(a, "BTCUSDT")) for a in aggregates]
        await server.send("btcusdt@aggTrade", frames[:20])
        assert await eventually(lambda: run.state("BTCUSDT").ticks == 20)
        await server.drop("btcusdt@aggTrade")
        await server.wait_for_connects(2)
        await server.wait_for("btcusdt@aggTrade")
        await server.send("btcusdt@aggTrade", frames[50:])
        assert await eventually(lambda: gap_filled(redis_client))
    filled = await backfilled(redis_client, "BTCUSDT")
    assert [t.trade_id for t in filled] == [a.id for a in aggregates[20:50]]
    assert [(t.size, t.ts) for t in filled] == [(a.qty, a.time) for a in aggregates[20:50]]
    assert [r.params.get("fromId") for r in rest.paths("/fapi/v1/aggTrades")] == [
        str(aggregates[20].id)
    ]


async def test_a_gap_recorded_by_one_run_is_filled_by_the_next(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    """REST away during the first run: the gap stays recorded in `gaps:BTCUSDT`; the next run
    finds it and fills it. Nothing is lost on a restart."""
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 60, now_ms() - 5_000)
    first_run = ingestor_settings(
        redis_url, server, symbols="btcusdt", binance_api_key=KEY, binance_rest_timeout_s=0.5
    )
    async with running_ingestor(first_run) as run:
        await server.wait_for("btcusdt@trade")
        await drop_and_miss(server, run, trades[:20], trades[20:40])
        await server.publish("BTCUSDT", trades[40:])
        assert await eventually(lambda: run.state("BTCUSDT").published == 40)

        async def recorded() -> bool:
            return bool(await redis_client.hlen(keys.gaps("BTCUSDT")))

        assert await eventually(recorded)
        assert await eventually(lambda: kinds(redis_client, "backfill_waiting"))
    assert await backfilled(redis_client, "BTCUSDT") == []
    second_run = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_api_key=KEY
    )
    async with running_ingestor(second_run):
        assert await eventually(lambda: gap_filled(redis_client))
    assert [t.trade_id for t in await backfilled(redis_client, "BTCUSDT")] == [
        t.id for t in trades[20:40]
    ]
    assert await redis_client.hlen(keys.gaps("BTCUSDT")) == 0


async def test_a_restarted_ingestor_backfills_what_it_missed_while_down(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 90, now_ms() - 5_000)
    settings = ingestor_settings(redis_url, server, rest.url, symbols="btcusdt")
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        await server.publish("BTCUSDT", trades[:30])
        assert await eventually(lambda: run.state("BTCUSDT").published == 30)
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        await server.publish("BTCUSDT", trades[60:])
        assert await eventually(lambda: gap_filled(redis_client))
    assert await coverage(redis_client, "BTCUSDT") == exchange.market_ids("BTCUSDT")
    assert await volume_per_second(redis_client, "BTCUSDT") == exchange.volume_per_second("BTCUSDT")


FAULTS = {
    "not_json": "not JSON",
    "missing_field": "field 'qty'",
    "other_symbol": "an answer for another symbol?",
    "outside_range": "below the fromId",
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_bad_answer_is_dead_lettered_and_asked_again(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer, fault: str
) -> None:
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 1_000, now_ms() - 5_000, price=87_000.0)
    make_trades(exchange, "ETHUSDT", 40, now_ms() - 9_000, price=2_900.0)  # ids above BTC's
    rest.faults.append(fault)
    rest.fault_paths.add("/fapi/v1/historicalTrades")
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt,ethusdt", binance_api_key=KEY
    )
    await one_gap(server, redis_client, settings, trades, slice(600, 700))
    assert await kinds(redis_client, "backfill_failed") == []
    assert [t.trade_id for t in await backfilled(redis_client, "BTCUSDT")] == [
        t.id for t in trades[600:700]
    ]
    letters = await dead_letters(redis_client)
    assert len(letters) == 1
    assert FAULTS[fault] in letters[0]["reason"], letters[0]["reason"]
    assert letters[0]["reason"].startswith("BTCUSDT: ")
    assert len(rest.paths("/fapi/v1/historicalTrades")) == 2


async def test_answers_that_never_fit_end_the_gap_reported_and_the_feed_goes_on(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 60, now_ms() - 5_000)
    rest.faults.extend(["not_json"] * 3)
    rest.fault_paths.add("/fapi/v1/historicalTrades")
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_api_key=KEY
    )
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        await drop_and_miss(server, run, trades[:20], trades[20:40])
        await server.publish("BTCUSDT", trades[40:60])
        assert await eventually(lambda: gap_filled(redis_client))
        later = make_trades(exchange, "BTCUSDT", 20, now_ms())
        await server.publish("BTCUSDT", later)
        assert await eventually(lambda: run.state("BTCUSDT").published == 60)
        assert await eventually(lambda: run.ingestor.notices.pending == 0)
    (failed,) = await kinds(redis_client, "backfill_failed")
    assert failed.startswith(f"ids {trades[20].id}..{trades[39].id}: 3 answers that do not fit")
    letters = await dead_letters(redis_client)
    assert len(letters) == 4  # three answers, and the gap itself
    assert "back-fill failed" in letters[-1]["reason"]
    assert await redis_client.hlen(keys.gaps("BTCUSDT")) == 0


@pytest.mark.parametrize("fault", ["http_500", "timeout"])
async def test_server_errors_and_timeouts_are_asked_again(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer, fault: str
) -> None:
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 60, now_ms() - 5_000)
    rest.slow_s = 2.0
    rest.faults.append(fault)
    rest.fault_paths.add("/fapi/v1/historicalTrades")
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_api_key=KEY,
        binance_rest_timeout_s=0.5,
    )  # fmt: skip
    await one_gap(server, redis_client, settings, trades, slice(20, 40))
    (waiting,) = await kinds(redis_client, "backfill_waiting")
    assert ("HTTP 500" in waiting) if fault == "http_500" else ("TimeoutError" in waiting)
    assert [t.trade_id for t in await backfilled(redis_client, "BTCUSDT")] == [
        t.id for t in trades[20:40]
    ]


@pytest.mark.parametrize(("fault", "pause_s"), [("429", 1.0), ("418", 2.0)])
async def test_429_and_418_pause_every_request_for_retry_after(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer, fault: str,
    pause_s: float,
) -> None:  # fmt: skip
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 60, now_ms() - 5_000)
    rest.faults.append(fault)
    rest.fault_paths.add("/fapi/v1/historicalTrades")
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_api_key=KEY
    )
    counters = await one_gap(server, redis_client, settings, trades, slice(20, 40))
    asked = rest.paths("/fapi/v1/historicalTrades")
    assert [r.status for r in asked] == [int(fault), 200]
    assert asked[1].at - asked[0].at >= pause_s
    assert [t.trade_id for t in await backfilled(redis_client, "BTCUSDT")] == [
        t.id for t in trades[20:40]
    ]
    if fault == "429":
        assert counters["rest_throttled"] == 1
    else:
        assert int(counters["rest_banned_until"]) > 0


async def test_a_gap_older_than_rest_serves_is_reported_not_retried(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    exchange = server.exchange
    trades = make_trades(exchange, "BTCUSDT", 80, now_ms() - 5_000)
    rest.oldest_id["BTCUSDT"] = trades[50].id  # the whole gap is beyond REST's memory
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_api_key=KEY
    )
    await one_gap(server, redis_client, settings, trades, slice(20, 40))
    await asyncio.sleep(0.5)
    (failed,) = await kinds(redis_client, "backfill_failed")
    assert "REST lists none of these ids" in failed
    assert await backfilled(redis_client, "BTCUSDT") == []
    assert len(rest.paths("/fapi/v1/historicalTrades")) == 1
    assert await redis_client.hlen(keys.gaps("BTCUSDT")) == 0


async def test_a_refused_key_ends_the_gap_with_the_reason(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    async with RestServer(server.exchange, api_key="theRightKey1") as rest:
        exchange = server.exchange
        trades = make_trades(exchange, "BTCUSDT", 60, now_ms() - 5_000)
        settings = ingestor_settings(
            redis_url, server, rest.url, symbols="btcusdt", binance_api_key="theWrongKey1"
        )
        await one_gap(server, redis_client, settings, trades, slice(20, 40))
    (failed,) = await kinds(redis_client, "backfill_failed")
    assert "REST refused" in failed and "HTTP 401" in failed and "-2014" in failed
