"""Binance's routed endpoints: the route of each stream from the table, silence proven by REST.

A local WebSocket server enforces the routing strictly (`@trade` only on `/public`, `@aggTrade`
only on `/market`, silence everywhere else, unrouted included) and a local REST server answers
from the same trades, so the ingestor can tell a quiet symbol from a silent route.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from shared.redis_io import Redis
from testkit.binance_rest import RestServer
from testkit.binance_ws import BinanceServer, make_trades
from testkit.polling import eventually
from tests.ingestor_support import events, ingestor_settings, running_ingestor, stream_ticks


async def ids_in(redis: Redis, symbol: str) -> list[int]:
    return [tick.trade_id for tick in await stream_ticks(redis, symbol)]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_the_table_routes_trade_to_public_and_the_first_tick_comes_at_once(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    """Default route settings (the stale timeout is Binance's default too)."""
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_stale_timeout_s=30
    )
    started = time.monotonic()
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        trades = make_trades(server.exchange, "BTCUSDT", 20, now_ms())
        await server.publish("BTCUSDT", trades)
        assert await eventually(lambda: run.state("BTCUSDT").published == 20)
        first_tick_s = time.monotonic() - started
        counters = run.counters
    assert first_tick_s < 5
    assert server.connects == ["/public/ws/btcusdt@trade"]
    assert await ids_in(redis_client, "BTCUSDT") == [t.id for t in trades]
    assert counters["route:BTCUSDT"] == "/public"
    delivering = await events(redis_client, "delivering")
    assert [e.detail for e in delivering] == ["/public delivers btcusdt@trade"]
    # Nothing was silent: REST was asked for its clock only.
    assert [r.path for r in rest.requests] == ["/fapi/v1/time"]


async def test_aggtrade_goes_to_market(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_stream="aggTrade"
    )
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@aggTrade")
        trades = make_trades(server.exchange, "BTCUSDT", 30, now_ms())
        await server.publish("BTCUSDT", trades)
        aggregates = server.exchange.aggregates("BTCUSDT")
        assert await eventually(lambda: run.state("BTCUSDT").published == len(aggregates))
    assert server.connects == ["/market/ws/btcusdt@aggTrade"]
    assert await ids_in(redis_client, "BTCUSDT") == [a.id for a in aggregates]


async def test_a_route_proven_silent_by_rest_is_left_for_the_next(
    redis_url: str, redis_client: Redis, rest_server_pair: tuple[BinanceServer, RestServer]
) -> None:
    """`@trade` delivered only on the unrouted path: `/public` connects and stays silent while
    REST shows the exchange trading, so the ingestor moves on within one stale timeout."""
    server, rest = rest_server_pair
    settings = ingestor_settings(redis_url, server, rest.url, symbols="btcusdt")
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        make_trades(server.exchange, "BTCUSDT", 5, now_ms() + 1_500)  # traded, not delivered
        assert await eventually(lambda: server.listeners("btcusdt@trade") != [], within=10)
        later = make_trades(server.exchange, "BTCUSDT", 10, now_ms() + 2_000)
        await server.publish("BTCUSDT", later)
        assert await eventually(lambda: run.state("BTCUSDT").published == 10)
        counters = run.counters
    assert server.connects == ["/public/ws/btcusdt@trade", "/ws/btcusdt@trade"]
    silent = await events(redis_client, "route_silent")
    assert len(silent) == 1 and "/public/ws/btcusdt@trade" in silent[0].detail
    assert "while the exchange traded" in silent[0].detail
    changed = await events(redis_client, "route_changed")
    assert [e.detail for e in changed] == ["btcusdt@trade: trying unrouted (/public is silent)"]
    assert counters["route:BTCUSDT"] == "unrouted"
    assert [r.path for r in rest.requests].count("/fapi/v1/trades") == 1


@pytest.fixture
async def rest_server_pair() -> AsyncIterator[tuple[BinanceServer, RestServer]]:
    async with (
        BinanceServer(routes={"trade": ""}) as server,
        RestServer(server.exchange) as rest,
    ):
        yield server, rest


async def test_a_quiet_symbol_is_proven_quiet_and_kept(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    """No trade at all for several stale timeouts: REST says the exchange did not trade, so
    the connection stays open on its route and nothing is called silent."""
    make_trades(server.exchange, "BTCUSDT", 3, now_ms() - 60_000)  # an old trade, before
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_stale_timeout_s=0.3
    )
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        assert await eventually(lambda: run.counters.get("quiet_checks:BTCUSDT", 0) >= 2)
        assert run.health.status == "ok"
    assert server.connects == ["/public/ws/btcusdt@trade"]
    assert await events(redis_client, "route_silent") == []
    assert await events(redis_client, "stale") == []


async def test_every_route_silent_makes_the_service_degraded_with_the_remedy(
    redis_url: str, redis_client: Redis
) -> None:
    async with (
        BinanceServer(routes={}) as server,
        RestServer(server.exchange) as rest,
    ):
        settings = ingestor_settings(
            redis_url, server, rest.url, symbols="btcusdt", binance_stale_timeout_s=0.3
        )
        async with running_ingestor(settings) as run:

            async def trading() -> None:
                while True:
                    make_trades(server.exchange, "BTCUSDT", 1, now_ms())
                    await asyncio.sleep(0.05)

            trader = asyncio.create_task(trading())
            try:
                assert await eventually(lambda: run.health.status == "degraded"
                                        and "every route" in str(run.counters["problem"]),
                                        within=15)  # fmt: skip
                problem = run.counters["problem"]
            finally:
                trader.cancel()
    assert problem == "BTCUSDT: trade stream silent on every route; set BINANCE_STREAM=aggTrade"
    paths = [c.removesuffix("/ws/btcusdt@trade") for c in server.connects[:3]]
    assert paths == ["/public", "", "/market"]
    assert len(await events(redis_client, "route_silent")) >= 3


async def test_an_old_style_url_with_a_path_still_works_and_is_reported_once(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_ws_url=f"{server.base}/market"
    )
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        make_trades(server.exchange, "BTCUSDT", 5, now_ms() + 1_500)
        assert await eventually(lambda: server.listeners("btcusdt@trade") != [], within=10)
        trades = make_trades(server.exchange, "BTCUSDT", 5, now_ms() + 2_000)
        await server.publish("BTCUSDT", trades)
        assert await eventually(lambda: run.state("BTCUSDT").published == 5)
    assert server.connects[:2] == ["/market/ws/btcusdt@trade", "/public/ws/btcusdt@trade"]
    notes = await events(redis_client, "config")
    assert len(notes) == 1
    assert notes[0].detail.startswith("BINANCE_WS_URL ends in a path (/market)")
    assert f"set it to {server.base}" in notes[0].detail


async def test_a_stuck_connection_on_a_route_that_delivered_is_reconnected_and_backfilled(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    """The route delivered, then the server goes silent while the exchange trades: the route is
    kept, the connection reopened, and what REST shows was missed is back-filled, even with no
    later trade on the socket."""
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_api_key="testkey123"
    )
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@trade")
        first = make_trades(server.exchange, "BTCUSDT", 10, now_ms())
        await server.publish("BTCUSDT", first)
        assert await eventually(lambda: run.state("BTCUSDT").published == 10)
        server.silent_paths.add("/public")
        missed = make_trades(server.exchange, "BTCUSDT", 7, now_ms() + 1_200)
        assert await eventually(lambda: len(server.connects) >= 2, within=10)

        async def backfilled() -> bool:
            return bool(await events(redis_client, "backfilled"))

        assert await eventually(backfilled, within=10)
        counters = run.counters
    assert server.connects == ["/public/ws/btcusdt@trade"] * 2
    assert counters["route:BTCUSDT"] == "/public"
    stale = await events(redis_client, "stale")
    assert stale and "the exchange traded" in stale[0].detail and "reconnecting" in stale[0].detail
    gaps = await events(redis_client, "gap")
    assert [g.detail for g in gaps] == [
        f"missing trade ids {missed[0].id}..{missed[-1].id} (7 trades), found by REST"
    ]
    backfill = await redis_client.xrange("backfill:BTCUSDT")
    assert [int(fields["trade_id"]) for _, fields in backfill] == [t.id for t in missed]
    assert {fields["source"] for _, fields in backfill} == {"rest"}
    assert await redis_client.hlen("gaps:BTCUSDT") == 0


async def test_silence_on_an_aggtrade_stream_is_judged_in_aggregate_ids(
    redis_url: str, redis_client: Redis, server: BinanceServer, rest: RestServer
) -> None:
    """The probe asks `aggTrades?limit=1`: a quiet spell claims nothing (trade ids are far
    above aggregate ids, so asking `trades` would have claimed billions), and aggregates the
    stuck socket missed are back-filled by aggregate id."""
    settings = ingestor_settings(
        redis_url, server, rest.url, symbols="btcusdt", binance_stream="aggTrade",
        binance_stale_timeout_s=0.3,
    )  # fmt: skip
    async with running_ingestor(settings) as run:
        await server.wait_for("btcusdt@aggTrade")
        first = make_trades(server.exchange, "BTCUSDT", 20, now_ms())
        await server.publish("BTCUSDT", first)
        delivered = len(server.exchange.aggregates("BTCUSDT"))
        assert await eventually(lambda: run.state("BTCUSDT").published == delivered)
        assert await eventually(lambda: run.counters.get("quiet_checks:BTCUSDT", 0) >= 2)
        assert run.state("BTCUSDT").gaps == 0
        server.silent_paths.add("/market")
        make_trades(server.exchange, "BTCUSDT", 10, now_ms() + 1_200)
        aggregates = server.exchange.aggregates("BTCUSDT")

        async def filled() -> bool:
            return await redis_client.xlen("backfill:BTCUSDT") == len(aggregates) - delivered

        assert await eventually(filled, within=15)
    backfill = await redis_client.xrange("backfill:BTCUSDT")
    assert [int(f["trade_id"]) for _, f in backfill] == [a.id for a in aggregates[delivered:]]
    paths = {r.path for r in rest.requests}
    assert "/fapi/v1/trades" not in paths and "/fapi/v1/aggTrades" in paths
