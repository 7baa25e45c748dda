"""A local Binance USD-M Futures REST server on 127.0.0.1 (aiohttp), serving an `Exchange`.

Four endpoints, in Binance's exact JSON, with their weights and error codes:

- `GET /fapi/v1/time` (weight 1): `{"serverTime": ...}`;
- `GET /fapi/v1/trades?symbol=&limit=` (weight 5): the newest market trades, oldest first;
- `GET /fapi/v1/historicalTrades?symbol=&fromId=&limit=` (weight 20, header `X-MBX-APIKEY`,
  limit at most 500): market trades from `fromId` on;
- `GET /fapi/v1/aggTrades?symbol=&fromId=|startTime=&endTime=&limit=` (weight 20, limit at most
  1,000, `startTime`/`endTime` less than an hour apart).

Every answer carries `X-MBX-USED-WEIGHT-1M`. Above `ip_limit` weight in a minute (`Limits`) the
server answers 429 with `Retry-After`; a client that asks again before that time is up is
counted, and after `ban_after` such requests it is banned: 418 with `Retry-After` until the ban
ends. Trades below `oldest_id` (per symbol) are not served any more, as a real exchange forgets
old history.

Tests inject faults, taken one per request in order (`faults`): an answer that is not JSON,
lacks a field, holds another symbol's trades or ids outside the range asked, an HTTP 500, a
timeout (the answer comes after `slow_s`), a 429 or a 418 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from testkit.exchange import Exchange, agg_rest

WEIGHTS = {
    "/fapi/v1/time": 1,
    "/fapi/v1/trades": 5,
    "/fapi/v1/historicalTrades": 20,
    "/fapi/v1/aggTrades": 20,
}
FAULTS = (
    "not_json", "missing_field", "other_symbol", "outside_range", "http_500", "timeout",
    "429", "418",
)  # fmt: skip


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]
    weight: int
    status: int
    at: float
    keyed: bool


@dataclass(frozen=True)
class Limits:
    """Binance's rate limiting as the server plays it: above `ip_limit` weight a minute, 429
    with `Retry-After: retry_after_s`; the `ban_after`-th request within that time, 418 with
    `Retry-After: ban_s` (also the ban a `418` fault starts)."""

    ip_limit: int = 2_400
    ban_after: int = 3
    retry_after_s: int = 2
    ban_s: int = 5


@dataclass
class RestServer:
    """Use as `async with RestServer(exchange) as rest:`; `rest.url` is `BINANCE_REST_URL`."""

    exchange: Exchange
    api_key: str = ""
    """When set, `historicalTrades` wants exactly this key; otherwise any non-empty key."""
    limits: Limits = field(default_factory=Limits)
    slow_s: float = 15.0
    """How late the answer of a `timeout` fault comes."""
    port: int = 0
    oldest_id: dict[str, int] = field(default_factory=dict)
    faults: deque[str] = field(default_factory=deque)
    fault_paths: set[str] = field(default_factory=set)
    """Paths the faults apply to (all when empty)."""
    requests: list[Request] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    _window: deque[tuple[float, int]] = field(default_factory=deque)
    _throttled_until: float = 0.0
    _banned_until: float = 0.0
    _violations: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RestServer:
        app = web.Application()
        for path in WEIGHTS:
            app.router.add_get(path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def paths(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    # Handling.

    def _used(self, now: float, weight: int) -> int:
        while self._window and self._window[0][0] <= now - 60.0:
            self._window.popleft()
        self._window.append((now, weight))
        return sum(w for _, w in self._window)

    def _json(self, body: Any, used: int, status: int = 200) -> web.Response:
        return web.Response(
            body=orjson.dumps(body), status=status, content_type="application/json",
            headers={"X-MBX-USED-WEIGHT-1M": str(used)},
        )  # fmt: skip

    def _error(
        self, status: int, code: int, msg: str, used: int, retry_after: int | None = None
    ) -> web.Response:
        response = self._json({"code": code, "msg": msg}, used, status)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        weight = WEIGHTS[path]
        params = dict(request.query)
        keyed = bool(request.headers.get("X-MBX-APIKEY"))
        now = self.clock()
        response = await self._answer(request, path, params, weight, now)
        self.requests.append(Request(path, params, weight, response.status, now, keyed))
        return response

    async def _answer(
        self, request: web.Request, path: str, params: dict[str, str], weight: int, now: float
    ) -> web.StreamResponse:
        limits = self.limits
        used = self._used(now, weight)
        if now < self._banned_until:
            left = int(self._banned_until - now) + 1
            return self._error(
                418, -1003, f"Way too many requests; IP banned for {left} s.", used, left
            )
        if now < self._throttled_until:
            self._violations += 1
            if self._violations >= limits.ban_after:
                self._banned_until = now + limits.ban_s
                return self._error(
                    418, -1003, "Way too many requests; IP banned.", used, limits.ban_s
                )
            left = int(self._throttled_until - now) + 1
            return self._error(429, -1003, "Too many requests; back off.", used, left)
        if used > limits.ip_limit:
            self._throttled_until = now + limits.retry_after_s
            return self._error(
                429, -1003, f"Too many requests; current limit of IP is {limits.ip_limit} weight "
                "per minute.", used, limits.retry_after_s,
            )  # fmt: skip
        fault = self._fault(path)
        if fault == "http_500":
            return web.Response(
                status=500, text="Internal error", headers={"X-MBX-USED-WEIGHT-1M": str(used)}
            )
        if fault == "timeout":
            await asyncio.sleep(self.slow_s)
        if fault == "429":
            return self._error(429, -1003, "Too many requests.", used, limits.retry_after_s)
        if fault == "418":
            self._banned_until = now + limits.ban_s
            return self._error(418, -1003, "Way too many requests; IP banned.", used, limits.ban_s)
        if path == "/fapi/v1/time":
            return self._json({"serverTime": time.time_ns() // 1_000_000}, used)
        symbol = params.get("symbol", "")
        if symbol not in self.exchange.books:
            return self._error(400, -1121, "Invalid symbol.", used)
        try:
            body = self._body(request, path, symbol, params, used)
        except _Refused as refused:
            return refused.response
        if fault is not None:
            spoiled = self._spoiled(fault, path, body, symbol)
            if isinstance(spoiled, bytes):
                headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
                return web.Response(body=spoiled, content_type="application/json", headers=headers)
            body = spoiled
        return self._json(body, used)

    def _fault(self, path: str) -> str | None:
        if self.faults and (not self.fault_paths or path in self.fault_paths):
            return self.faults.popleft()
        return None

    def _refuse(self, code: int, msg: str, used: int, status: int = 400) -> _Refused:
        return _Refused(self._error(status, code, msg, used))

    def _limit(self, params: dict[str, str], default: int, most: int, used: int) -> int:
        limit = self._integer(params, "limit", used)
        if limit is None:
            return default
        if not 1 <= limit <= most:
            raise self._refuse(-1130, "Data sent for parameter 'limit' is not valid.", used)
        return limit

    def _integer(self, params: dict[str, str], name: str, used: int) -> int | None:
        if name not in params:
            return None
        try:
            return int(params[name])
        except ValueError:
            illegal = f"Illegal characters found in parameter '{name}'."
            raise self._refuse(-1100, illegal, used) from None

    def _body(
        self, request: web.Request, path: str, symbol: str, params: dict[str, str], used: int
    ) -> list[dict[str, object]]:
        book = self.exchange.book(symbol)
        oldest = self.oldest_id.get(symbol, book.first_id)
        if path == "/fapi/v1/trades":
            limit = self._limit(params, 500, 1000, used)
            found: list[dict[str, object]] = []
            for trade_id in range(book.next_id - 1, max(oldest, book.first_id) - 1, -1):
                trade = book.trade(trade_id - book.first_id)
                if trade.market:
                    found.append(trade.rest())
                    if len(found) >= limit:
                        break
            return list(reversed(found))
        if path == "/fapi/v1/historicalTrades":
            key = request.headers.get("X-MBX-APIKEY", "")
            if not key or (self.api_key and key != self.api_key):
                raise self._refuse(-2014, "API-key format invalid.", used, status=401)
            limit = self._limit(params, 100, 500, used)
            from_id = self._integer(params, "fromId", used)
            start = max(oldest, book.next_id - limit if from_id is None else from_id)
            return [t.rest() for t in book.trades(start, start + limit * 4) if t.market][:limit]
        limit = self._limit(params, 500, 1000, used)
        from_id = self._integer(params, "fromId", used)
        start_ms = self._integer(params, "startTime", used)
        end_ms = self._integer(params, "endTime", used)
        if start_ms is not None and end_ms is not None and end_ms - start_ms >= 3_600_000:
            raise _Refused(
                self._error(400, -1127, "More than 1 hours between startTime and endTime.", used)
            )
        oldest_agg = book.aggregate_of(oldest)
        first_k = 0 if oldest_agg is None else oldest_agg
        if from_id is not None:
            low = book.aggregates_from_id(from_id)
        elif start_ms is not None:
            low = book.aggregates_from_time(start_ms)
        elif end_ms is not None:
            low = max(0, book.aggregates_until_time(end_ms) - limit)
        else:
            low = max(0, book.aggregates - limit)
        high = book.aggregates if end_ms is None else book.aggregates_until_time(end_ms)
        low = max(low, first_k)
        return [agg_rest(book.aggregate(k)) for k in range(low, min(high, low + limit))]

    def _spoiled(
        self, fault: str, path: str, body: list[dict[str, object]], symbol: str
    ) -> list[dict[str, object]] | bytes:
        if fault == "not_json":
            return b"<html>502 Bad Gateway</html>"
        if fault == "missing_field":
            return [{k: v for k, v in item.items() if k not in ("qty", "q")} for item in body] or [
                {"id": 1}
            ]
        if fault == "other_symbol":
            others = [s for s in self.exchange.books if s != symbol]
            if not others:
                return body
            other = self.exchange.book(others[0])
            if path == "/fapi/v1/aggTrades":
                return [agg_rest(other.aggregate(k)) for k in range(min(other.aggregates, 20))]
            return [t.rest() for t in other.trades(other.first_id, other.first_id + 20) if t.market]
        if fault == "outside_range":
            if path == "/fapi/v1/aggTrades":
                book = self.exchange.book(symbol)
                return [agg_rest(book.aggregate(k)) for k in range(min(book.aggregates, 5))]
            book = self.exchange.book(symbol)
            return [t.rest() for t in book.trades(book.first_id, book.first_id + 5) if t.market]
        return body


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response
