"""One page's push stream (`push.events` on `push.page_connection`) against a private Redis: a
cut of its connection ends the stream, whenever it comes, so the page says it fell back."""

from __future__ import annotations

import orjson
import pytest
import redis

from services.dashboard.push import Subscription, events, page_connection, push_client
from shared.config import load_settings
from shared.schemas import Bar

LIVE = {"mode": "live", "a": "BTCUSDT", "b": "ETHUSDT", "tf": "1s", "window": 60,
        "method": "ols", "k": 2.0}  # fmt: skip


def add_bar(client: redis.Redis, subscription: Subscription, start: int) -> None:
    bar = Bar(start=start, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0,
              vwap=1.0, trades=1)  # fmt: skip
    client.xadd(subscription.streams["a"], bar.to_fields())


def test_a_connection_cut_between_two_reads_ends_the_stream(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    subscription = Subscription.of_request(orjson.dumps(LIVE).decode(), 60)
    pool_client = push_client(load_settings(redis_url=redis_url))
    with page_connection(pool_client) as connection:
        stream = events(connection, subscription)
        assert next(stream).startswith("retry:")
        assert next(stream) == "data: {}\n\n"
        add_bar(sync_redis, subscription, 1_000)
        assert '"a"' in next(stream)
        # The stream is paused between two reads: its connection is not in a command now.
        watching = [c for c in sync_redis.client_list() if c.get("cmd") == "xread"]
        assert len(watching) == 1
        sync_redis.client_kill_filter(_id=watching[0]["id"])
        add_bar(sync_redis, subscription, 2_000)
        with pytest.raises(redis.ConnectionError):
            next(stream)
    pool_client.close()
