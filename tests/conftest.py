"""Fixtures shared by every tier: a private redis-server, a clean database per test, SQLite paths.

Tests never touch the machine's Redis on 6379: the session starts its own server on a free port.
Markers follow the folder (`tests/unit` -> unit, ...), so `-m` selections cannot disagree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from shared.redis_io import Redis, client
from testkit.processes import RedisProcess

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One private redis-server for the session (fails, never skips, when the binary is missing)."""
    try:
        server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> Iterator[str]:
    """The private server's URL, with its database emptied before each test."""
    if not redis_server.answers():
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushdb()
    yield redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    connection = client(redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "ticks.db"
