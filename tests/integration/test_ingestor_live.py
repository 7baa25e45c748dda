"""The live source against a local server speaking Binance's format, fed the recorded trades.

The ingestor runs in the test's event loop (the same `Ingestor` that `python -m
services.ingestor` runs) against a private redis-server; the server is a real WebSocket server
on 127.0.0.1. Timeouts are shortened through settings so reconnects take fractions of a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from shared.redis_io import Redis
from testkit.binance_ws import (
    BinanceServer,
    RecordedFrames,
    frame_bytes,
    recorded_frames,
    trade_event,
)
from testkit.polling import eventually
from testkit.processes import free_port
from testkit.recorded import market_trades, recorded_rows
from tests.ingestor_support import (
    dead_letters,
    events,
    ingestor_settings,
    running_ingestor,
    stream_ticks,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
QUIET = {"binance_stale_timeout_s": 10.0}
"""For tests about something else: no stale reconnect while the test is between sends."""


@pytest.fixture(scope="module")
def recorded() -> RecordedFrames:
    return recorded_frames(recorded_rows())


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    async with BinanceServer() as running:
        yield running


def stream(symbol: str) -> str:
    return f"{symbol.lower()}@trade"


def trades(symbol: str, ids: range | list[int], ts: int = 1_765_892_498_698) -> list[bytes]:
    return [
        frame_bytes(trade_event(symbol, i, ts + i % 1000, f"{100 + i % 7}.10", "0.003"))
        for i in ids
    ]


async def ids_in(redis: Redis, symbol: str) -> list[int]:
    return [tick.trade_id for tick in await stream_ticks(redis, symbol)]


async def test_every_recorded_market_trade_arrives_once_and_in_order(
    redis_url: str, redis_client: Redis, server: BinanceServer, recorded: RecordedFrames
) -> None:
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        for symbol in SYMBOLS:
            await server.wait_for(stream(symbol))
        await asyncio.gather(*(server.send(stream(s), recorded.frames[s]) for s in SYMBOLS))
        assert await eventually(
            lambda: all(run.state(s).published == recorded.market_count(s) for s in SYMBOLS),
            within=60,
        ), run.counters
        counters = run.counters
    expected = [row for row in market_trades()]
    for symbol in SYMBOLS:
        ticks = await stream_ticks(redis_client, symbol)
        want = [row for row in expected if row.symbol == symbol]
        assert [t.trade_id for t in ticks] == recorded.market_ids[symbol]
        assert [(t.ts, t.price, t.size) for t in ticks] == [(r.ts, r.price, r.size) for r in want]
        assert all(t.symbol == symbol and t.recv_ts >= t.ts for t in ticks)
        na_prints = len(recorded.frames[symbol]) - recorded.market_count(symbol)
        assert counters[f"non_market:{symbol}"] == na_prints
        assert counters[f"gaps:{symbol}"] == 0 and counters[f"dropped:{symbol}"] == 0
        assert counters[f"ticks:{symbol}"] == len(ticks)
    assert sum(int(counters[f"non_market:{s}"]) for s in SYMBOLS) == 32
    assert counters["queue_depth"] == 0


async def test_maker_flag_gives_the_aggressor_side_and_decimals_stay_exact(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    frames = [
        frame_bytes(trade_event("BTCUSDT", 7, 1_700_000_000_000, "87162.10", "0.0030", maker=True)),
        frame_bytes(trade_event("BTCUSDT", 8, 1_700_000_000_001, "87162.20", "1", maker=False)),
    ]
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        await server.wait_for(stream("BTCUSDT"))
        await server.send(stream("BTCUSDT"), frames)
        assert await eventually(lambda: run.state("BTCUSDT").published == 2)
    ticks = await stream_ticks(redis_client, "BTCUSDT")
    assert [(t.side, t.price, t.size) for t in ticks] == [
        ("sell", "87162.10", "0.0030"),
        ("buy", "87162.20", "1"),
    ]


async def test_non_market_prints_are_counted_and_not_published(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    ts = 1_700_000_000_000
    frames = [
        frame_bytes(trade_event("ETHUSDT", 1, ts, "2950.10", "0.5")),
        frame_bytes(trade_event("ETHUSDT", 2, ts, "0", "0", execution="NA")),
        frame_bytes(trade_event("ETHUSDT", 3, ts, "2950.00", "1.2", execution="INSURANCE_FUND")),
        frame_bytes(trade_event("ETHUSDT", 4, ts, "2949.00", "3", execution="ADL")),
        frame_bytes(trade_event("ETHUSDT", 5, ts, "2950.20", "0.1")),
    ]
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        await server.wait_for(stream("ETHUSDT"))
        await server.send(stream("ETHUSDT"), frames)
        assert await eventually(lambda: run.state("ETHUSDT").published == 2)
        counters = run.counters
    assert await ids_in(redis_client, "ETHUSDT") == [1, 5]
    assert counters["non_market:ETHUSDT"] == 3
    assert counters["gaps:ETHUSDT"] == 0


async def test_server_closing_the_connection_leads_to_a_reconnect_that_loses_nothing_after(
    redis_url: str, redis_client: Redis, server: BinanceServer, recorded: RecordedFrames
) -> None:
    frames = recorded.frames["BTCUSDT"][:2_000]
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        await server.wait_for(stream("BTCUSDT"))
        await server.send(stream("BTCUSDT"), frames[:1_000])
        assert await eventually(lambda: run.state("BTCUSDT").ticks > 0)
        await server.drop(stream("BTCUSDT"))
        await server.wait_for_connects(3)  # two symbols, then the reconnect
        await server.wait_for(stream("BTCUSDT"))
        await server.send(stream("BTCUSDT"), frames[1_000:])
        end = recorded.first_id["BTCUSDT"] + 2_000
        want = [i for i in recorded.market_ids["BTCUSDT"] if i < end]
        assert await eventually(lambda: run.state("BTCUSDT").published == len(want))
    assert await ids_in(redis_client, "BTCUSDT") == want
    kinds = [(e.kind, e.symbol) for e in await events(redis_client) if e.symbol == "BTCUSDT"]
    assert [kind for kind, _ in kinds[:3]] == ["connected", "delivering", "disconnected"]
    assert kinds.count(("connected", "BTCUSDT")) == 2


async def test_a_feed_closed_without_a_stop_says_why_and_does_not_reconnect(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    """As the service closes its source when the publisher fails (`stop` not set): the
    `disconnected` event gives the service's reason, not the close frame's text."""
    settings = ingestor_settings(redis_url, server, symbols="btcusdt", **QUIET)
    async with running_ingestor(settings) as run:
        await server.wait_for(stream("BTCUSDT"))
        await run.ingestor.source.close("stopping: the publisher failed")

        async def disconnected() -> list[str]:
            return [e.detail for e in await events(redis_client, "disconnected")]

        assert await eventually(disconnected)
        await asyncio.sleep(0.5)  # ten reconnect back-offs (0.05 s)
        assert len(server.connects) == 1
        assert not run.stop.is_set()
    url = server.base + server.connects[0]
    assert (await disconnected())[0] == f"{url}: stopping: the publisher failed"


async def test_a_server_that_stops_sending_is_stale_and_reconnected_without_loss(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    settings = ingestor_settings(redis_url, server, symbols="btcusdt", binance_stale_timeout_s=0.4)
    async with running_ingestor(settings) as run:
        await server.wait_for(stream("BTCUSDT"))
        await server.send(stream("BTCUSDT"), trades("BTCUSDT", range(1, 101)))
        assert await eventually(lambda: run.state("BTCUSDT").published == 100)
        # The server now sends nothing: the watchdog must notice and reconnect.
        assert await eventually(lambda: run.state("BTCUSDT").connects >= 2)
        await server.wait_for(stream("BTCUSDT"))
        await server.send(stream("BTCUSDT"), trades("BTCUSDT", range(101, 201)))
        assert await eventually(lambda: run.state("BTCUSDT").published == 200)
    assert await ids_in(redis_client, "BTCUSDT") == list(range(1, 201))
    stale = await events(redis_client, "stale")
    assert stale and stale[0].symbol == "BTCUSDT"
    assert "nothing received for 0.4 s" in stale[0].detail


async def test_a_gap_is_reported_with_the_missing_range_and_old_ids_are_dropped(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    ids = [*range(1, 11), *range(15, 21), 18, 5, 21]
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        await server.wait_for(stream("BTCUSDT"))
        await server.send(stream("BTCUSDT"), trades("BTCUSDT", ids))
        assert await eventually(lambda: run.state("BTCUSDT").published == 17)
        counters = run.counters
    assert await ids_in(redis_client, "BTCUSDT") == [*range(1, 11), *range(15, 22)]
    gaps = await events(redis_client, "gap")
    assert [(g.symbol, g.detail) for g in gaps] == [
        ("BTCUSDT", "missing trade ids 11..14 (4 trades)")
    ]
    assert (counters["gaps:BTCUSDT"], counters["missing:BTCUSDT"]) == (1, 4)
    assert counters["dropped:BTCUSDT"] == 2


async def test_a_corrupt_id_far_ahead_is_refused_and_does_not_block_the_trades_after_it(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    """Accepted, an id near 2^62 would make every real trade after it look old."""
    corrupt = 2**62
    a_day_later = 1_765_892_498_698 + 86_400_000
    ids = [*range(1, 6), corrupt, *range(6, 11)]
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        await server.wait_for(stream("BTCUSDT"))
        await server.send(stream("BTCUSDT"), trades("BTCUSDT", ids))
        await server.send(stream("BTCUSDT"), trades("BTCUSDT", [3_000_000], ts=a_day_later))
        assert await eventually(lambda: run.state("BTCUSDT").published == 11)
        assert await eventually(lambda: run.ingestor.notices.pending == 0)
    assert await ids_in(redis_client, "BTCUSDT") == [*range(1, 11), 3_000_000]
    letters = await dead_letters(redis_client)
    assert len(letters) == 1
    assert f"trade id {corrupt}" in letters[0]["reason"]
    assert "refused as corrupt" in letters[0]["reason"]
    gaps = await events(redis_client, "gap")
    assert [g.detail for g in gaps] == ["missing trade ids 11..2999999 (2999989 trades)"]


async def test_malformed_frames_go_to_the_dead_letter_and_good_ones_keep_flowing(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    good = trades("ETHUSDT", range(1, 7))

    def broken(**changes: object) -> bytes:
        return frame_bytes({**trade_event("ETHUSDT", 9, 1_700_000_000_000, "1", "1"), **changes})

    bad: dict[str, bytes | str] = {
        "not JSON": b'{"e":"trade","T":',
        "not a JSON object": b"[1,2,3]",
        "not a trade event: e='depthUpdate'": b'{"e":"depthUpdate","E":1,"s":"ETHUSDT"}',
        "without field 'p'": b'{"e":"trade","T":1,"s":"ETHUSDT","t":9,"q":"1","X":"MARKET"}',
        "field 't' is not an integer 0..2^63-1": broken(t="9"),
        "field 'p' is not a decimal string": broken(p=2950.1),
        "field 'm' is not true or false": broken(m=1),
        "unknown execution type": broken(X="BLOCK"),
        "unexpected symbol 'BTCUSDT'": broken(s="BTCUSDT"),
        "ms ahead of this clock": broken(T=time.time_ns() // 1_000_000 + 3_600_000),
        "over the 65536 byte limit": b'{"e":"trade","pad":"' + b"x" * 70_000 + b'"}',
    }
    mixed: list[bytes | str] = []
    for good_frame, bad_frame in zip(good, bad.values(), strict=False):
        mixed += [good_frame, bad_frame]
    mixed += list(bad.values())[len(good) :]
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        await server.wait_for(stream("ETHUSDT"))
        await server.send_raw(stream("ETHUSDT"), mixed)
        assert await eventually(lambda: run.state("ETHUSDT").deadlettered == len(bad))
        assert await eventually(lambda: run.state("ETHUSDT").published == len(good))
        assert run.state("ETHUSDT").connects == 1
        assert await eventually(lambda: run.ingestor.notices.pending == 0)
        counters = run.counters
    assert await ids_in(redis_client, "ETHUSDT") == list(range(1, 7))
    letters = await dead_letters(redis_client)
    assert len(letters) == len(bad) == counters["deadlettered"]
    for (reason, raw), letter in zip(bad.items(), letters, strict=True):
        assert reason in letter["reason"], letter["reason"]
        assert letter["reason"].startswith("ETHUSDT: ")
        text = raw if isinstance(raw, str) else raw.decode()
        assert letter["raw"].startswith(text[:1000])


async def test_a_refused_route_is_left_for_the_next_candidate(
    redis_url: str, redis_client: Redis
) -> None:
    async with BinanceServer(refused_paths={"/public"}, routes={"trade": ""}) as server:
        settings = ingestor_settings(redis_url, server, symbols="btcusdt")
        async with running_ingestor(settings) as run:
            assert await eventually(lambda: server.listeners(stream("BTCUSDT")) != [])
            await server.send(stream("BTCUSDT"), trades("BTCUSDT", range(1, 11)))
            assert await eventually(lambda: run.state("BTCUSDT").published == 10)
            counters = run.counters
    failed = await events(redis_client, "connect_failed")
    assert len(failed) == 1 and "HTTP 404" in failed[0].detail
    assert server.connects == ["/ws/btcusdt@trade"]
    changed = await events(redis_client, "route_changed")
    assert [e.detail for e in changed] == ["btcusdt@trade: trying unrouted (/public was refused)"]
    assert counters["route:BTCUSDT"] == "unrouted"


async def test_pings_are_answered(redis_url: str, server: BinanceServer) -> None:
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)):
        await server.wait_for(stream("BTCUSDT"))
        latencies = await server.ping_all(stream("BTCUSDT"))
    assert len(latencies) == 1 and latencies[0] < 5


async def test_renewal_before_the_24h_cut_off_loses_and_repeats_nothing(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    settings = ingestor_settings(
        redis_url, server, symbols="btcusdt", binance_max_age_s=0.5, binance_stale_timeout_s=2.0
    )
    sent = 0

    async def keep_sending() -> None:
        nonlocal sent
        while True:
            await server.send(stream("BTCUSDT"), trades("BTCUSDT", range(sent + 1, sent + 6)))
            sent += 5
            await asyncio.sleep(0.005)

    async with running_ingestor(settings) as run:
        await server.wait_for(stream("BTCUSDT"))
        sender = asyncio.create_task(keep_sending())

        async def renewed_twice() -> bool:
            return len(await events(redis_client, "renewed")) >= 2

        # A renewal completes (and says so) only once the new connection has caught up.
        assert await eventually(renewed_twice, within=20)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        assert await eventually(lambda: run.state("BTCUSDT").published == sent)
        counters = run.counters
    assert await ids_in(redis_client, "BTCUSDT") == list(range(1, sent + 1))
    assert counters["gaps:BTCUSDT"] == 0
    renewed = await events(redis_client, "renewed")
    assert len(renewed) >= 2
    assert all("24 h cut-off" in e.detail for e in renewed)


async def test_aggtrade_stream_uses_the_aggregate_id(
    redis_url: str, redis_client: Redis, server: BinanceServer
) -> None:
    ts = 1_626_992_741_421
    frames = [
        frame_bytes({"e": "aggTrade", "E": ts + 150, "a": 16_599_292 + i, "s": "CTKUSDT",
                     "p": "1.01100", "q": "10", "f": 23_961_322 + i, "l": 23_961_322 + i,
                     "T": ts + i, "m": i % 2 == 1})
        for i in range(20)
    ]  # fmt: skip
    settings = ingestor_settings(
        redis_url, server, symbols="ctkusdt", binance_stream="aggTrade", **QUIET
    )
    async with running_ingestor(settings) as run:
        await server.wait_for("ctkusdt@aggTrade")
        await server.send("ctkusdt@aggTrade", frames)
        assert await eventually(lambda: run.state("CTKUSDT").published == 20)
    ticks = await stream_ticks(redis_client, "CTKUSDT")
    assert [t.trade_id for t in ticks] == list(range(16_599_292, 16_599_312))
    assert ticks[0].side == "buy" and ticks[1].side == "sell" and ticks[0].price == "1.01100"
    assert server.connects == ["/market/ws/ctkusdt@aggTrade"]


async def test_health_record_shows_per_symbol_counters(
    redis_url: str, server: BinanceServer
) -> None:
    async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
        for symbol in SYMBOLS:
            await server.wait_for(stream(symbol))
        await server.send(stream("BTCUSDT"), trades("BTCUSDT", range(1, 4)))
        assert await eventually(lambda: run.state("BTCUSDT").published == 3)
        counters = run.counters
        assert run.health.status == "ok"
    assert counters["connected:BTCUSDT"] == 1 and counters["connected:ETHUSDT"] == 1
    assert counters["ticks:BTCUSDT"] == 3 and counters["ticks:ETHUSDT"] == 0
    assert counters["last_tick:BTCUSDT"] == 1_765_892_498_698 + 3
    assert counters["queued:BTCUSDT"] == 0
    assert counters["route:BTCUSDT"] == "/public"
    assert counters["problem"] == ""
    for name in ("gaps", "dropped", "deadlettered", "non_market", "overflowed"):
        assert counters[f"{name}:BTCUSDT"] == 0
    assert {"queue_depth", "queue_size", "redis", "source"} <= counters.keys()


async def test_a_lost_server_makes_the_service_degraded_until_it_is_back(redis_url: str) -> None:
    async with BinanceServer() as server:
        port = server.port
        async with running_ingestor(ingestor_settings(redis_url, server, **QUIET)) as run:
            for symbol in SYMBOLS:
                await server.wait_for(stream(symbol))
            assert await eventually(lambda: bool(run.counters) and run.health.status == "ok")
            await server.__aexit__()
            assert await eventually(lambda: run.health.status == "degraded" and bool(run.counters))
            assert "BTCUSDT disconnected" in run.counters["problem"]
            async with BinanceServer(port=port) as again:
                for symbol in SYMBOLS:
                    await again.wait_for(stream(symbol))
                assert await eventually(lambda: bool(run.counters) and run.health.status == "ok")


async def test_an_unreachable_exchange_is_degraded_and_retried(
    redis_url: str, redis_client: Redis
) -> None:
    nowhere = f"ws://127.0.0.1:{free_port()}"
    settings = ingestor_settings(redis_url, symbols="btcusdt", binance_ws_url=nowhere)
    async with running_ingestor(settings) as run:
        assert await eventually(lambda: run.ingestor.source.started)
        assert run.counters["problem"] == "BTCUSDT disconnected"
        assert run.health.status == "degraded"
        feed = run.ingestor.source.feeds[0]  # type: ignore[attr-defined]
        assert await eventually(lambda: feed.attempts >= 3)
    failed = await events(redis_client, "connect_failed")
    assert failed and failed[0].detail.startswith(f"{nowhere}/public/ws/btcusdt@trade: ")
