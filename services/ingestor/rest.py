"""The Binance USD-M Futures REST client (aiohttp), spending weight through one budget.

Four endpoints, with Binance's weights: `time` (1), `trades` (5), `historicalTrades` (20,
header `X-MBX-APIKEY`), `aggTrades` (20). Every request waits for the budget first
(`budget.py`), so no caller, and no retry, can go faster than `BINANCE_REST_WEIGHT_PER_MIN`.
A 429 pauses every request (for `Retry-After`, or a growing back-off); a 418 is a ban: nothing
is asked until its `Retry-After` has passed. Failures are typed so that callers decide: an
answer that is not what the endpoint sends (`RestBadAnswer`) keeps its body for the dead
letters; `RestUnavailable` (timeouts, connection errors, 5xx), `RestThrottled` and `RestBanned`
are worth retrying; `RestRefused` (another 4xx: a bad key, an unknown symbol) is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from services.ingestor.budget import WeightBudget
from services.ingestor.rest_records import (
    AggTrade,
    RestAnswerError,
    RestTrade,
    parse_agg_trades,
    parse_error,
    parse_server_time,
    parse_trades,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TIME, TRADES = "/fapi/v1/time", "/fapi/v1/trades"
HISTORICAL_TRADES, AGG_TRADES = "/fapi/v1/historicalTrades", "/fapi/v1/aggTrades"
WEIGHTS: Mapping[str, int] = {TIME: 1, TRADES: 5, HISTORICAL_TRADES: 20, AGG_TRADES: 20}
HISTORICAL_LIMIT, AGG_LIMIT = 500, 1_000
"""The most each call returns."""
AGG_WINDOW_MS = 3_600_000
"""`aggTrades` with `startTime` and `endTime` wants them less than an hour apart."""
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
API_KEY_HEADER = "X-MBX-APIKEY"
TIMEOUT_S = 10.0


class RestFailure(Exception):
    """A request that did not give an answer to use; the message is for events and logs."""


class RestUnavailable(RestFailure):
    """No answer (connection, timeout) or a server error (5xx): try again later."""


class RestThrottled(RestFailure):
    """HTTP 429: every request waits for the pause the budget now holds."""


class RestBanned(RestFailure):
    """HTTP 418: the IP is banned until `Retry-After`; nothing is asked until then."""


class RestRefused(RestFailure):
    """Another 4xx (a bad API key, an unknown symbol): asking again will not help."""


class RestBadAnswer(RestFailure):
    """HTTP 200 with a body that is not what the endpoint sends; `body` is kept."""

    def __init__(self, message: str, body: bytes) -> None:
        super().__init__(message)
        self.body = body


@dataclass
class RestStats:
    """Counters for the health record."""

    requests: int = 0
    failures: int = 0
    throttled: int = 0
    banned_until_ms: int = 0
    exchange_used_weight: int = 0
    """The exchange's `X-MBX-USED-WEIGHT-1M` on the last answer (the whole IP's use)."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class BinanceRest:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        weight_per_min: int,
        *,
        timeout_s: float = TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.has_key = bool(api_key)
        self._api_key = api_key
        self.budget = WeightBudget(weight_per_min)
        self.stats = RestStats()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, raise_for_status=False)
        return self._session

    async def _acquire(self, weight: int) -> None:
        """Wait until the budget lets `weight` go, then spend it (the wait is computed, not
        polled: it ends when enough of the last minute's spending has expired)."""
        while (wait := self.budget.delay(weight, self._clock())) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        self.budget.spend(weight, self._clock())

    async def get(
        self, path: str, params: Mapping[str, str | int], *, keyed: bool = False
    ) -> bytes:
        """One request; the body of a 200 answer, else the typed failure."""
        await self._acquire(WEIGHTS[path])
        headers = {API_KEY_HEADER: self._api_key} if keyed else {}
        query = {name: str(value) for name, value in params.items()}
        self.stats.requests += 1
        try:
            async with self._client().get(
                self.base_url + path, params=query, headers=headers
            ) as response:
                body = await response.read()
                status, response_headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.stats.failures += 1
            raise RestUnavailable(f"GET {path}: {type(exc).__name__}: {exc}") from None
        with contextlib.suppress(TypeError, ValueError):
            self.stats.exchange_used_weight = int(response_headers.get(USED_WEIGHT_HEADER, ""))
        if status == 200:
            self.budget.succeeded()
            return body
        self.stats.failures += 1
        error = parse_error(body)
        said = f"{error.code} {error.msg}" if error else body[:200].decode("utf-8", "replace")
        what = f"GET {path}: HTTP {status}: {said}"
        now = self._clock()
        if status == 429:
            self.stats.throttled += 1
            pause = self.budget.throttled(now, _retry_after(response_headers))
            raise RestThrottled(f"{what}; pausing REST for {pause:g} s")
        if status == 418:
            pause = self.budget.banned(now, _retry_after(response_headers))
            self.stats.banned_until_ms = time.time_ns() // 1_000_000 + int(pause * 1000)
            raise RestBanned(f"{what}; banned, no request for {pause:g} s")
        if status >= 500:
            raise RestUnavailable(what)
        raise RestRefused(what)

    async def server_time(self) -> int:
        """The exchange's clock, epoch ms."""
        body = await self.get(TIME, {})
        return _parsed(body, parse_server_time, TIME)

    async def recent_trades(self, symbol: str, limit: int = 1) -> list[RestTrade]:
        body = await self.get(TRADES, {"symbol": symbol, "limit": limit})
        return _parsed(body, parse_trades, TRADES)

    async def historical_trades(self, symbol: str, from_id: int) -> list[RestTrade]:
        """Up to `HISTORICAL_LIMIT` trades from `from_id` on (needs the API key)."""
        params: dict[str, str | int] = {
            "symbol": symbol, "fromId": from_id, "limit": HISTORICAL_LIMIT,
        }  # fmt: skip
        body = await self.get(HISTORICAL_TRADES, params, keyed=True)
        return _parsed(body, parse_trades, HISTORICAL_TRADES)

    async def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = AGG_LIMIT,
    ) -> list[AggTrade]:
        """Up to `limit` aggregates from aggregate id `from_id` on, or inside
        `[start_ms, end_ms]` (less than `AGG_WINDOW_MS` apart), or the newest."""
        params: dict[str, str | int] = {"symbol": symbol, "limit": limit}
        if from_id is not None:
            params["fromId"] = from_id
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        body = await self.get(AGG_TRADES, params)
        return _parsed(body, parse_agg_trades, AGG_TRADES)


def _parsed(body: bytes, parse: Callable[[bytes], T], path: str) -> T:
    try:
        return parse(body)
    except RestAnswerError as exc:
        raise RestBadAnswer(f"GET {path}: {exc}", body) from None
