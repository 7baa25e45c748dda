"""Fixtures of the ingestor's integration tests: the local Binance WebSocket and REST servers,
serving one exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from testkit.binance_rest import Limits, RestServer
from testkit.binance_ws import BinanceServer


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    async with BinanceServer() as running:
        yield running


@pytest.fixture
async def rest(server: BinanceServer) -> AsyncIterator[RestServer]:
    async with RestServer(server.exchange, limits=Limits(retry_after_s=1, ban_s=2)) as running:
        yield running
