"""Asking REST what the exchange has: its clock, and a symbol's newest trade.

The feed asks only when a connection has delivered nothing for `BINANCE_STALE_TIMEOUT_S`
(`silence.py` judges the answer). The newest trade is asked in the ids the stream carries:
`GET /fapi/v1/trades?limit=1` for `@trade` (weight 5), `GET /fapi/v1/aggTrades?limit=1` for
`@aggTrade` (aggregate ids; weight 20). The clock offset is measured once (`GET /fapi/v1/time`,
weight 1) and again when a probe finds it unknown, so that the time a connection opened can be
compared with the exchange's trade times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.ingestor.backfill import AnswerProblem, check_price
from services.ingestor.rest import BinanceRest, RestBadAnswer, RestFailure
from services.ingestor.routes import StreamKind
from shared.health import now_ms

log = logging.getLogger(__name__)

AHEAD_MS = 60_000
"""A newest trade stamped further ahead of the exchange's own clock is not believed."""


@dataclass(frozen=True, slots=True)
class Newest:
    """The exchange's newest trade of a symbol, in the ids of the stream the feed reads."""

    id: int
    time: int
    price: str


class Prober:
    def __init__(self, rest: BinanceRest, stream: StreamKind) -> None:
        self.rest = rest
        self.stream = stream
        self.offset_ms: int | None = None
        """Exchange clock minus local clock, once measured."""

    async def sync_clock(self) -> None:
        """Measure the offset; failures leave it unknown (logged), to be measured again."""
        sent = now_ms()
        try:
            server = await self.rest.server_time()
        except RestFailure as exc:
            log.warning("exchange clock not measured", extra={"error": str(exc)})
            return
        received = now_ms()
        self.offset_ms = server - (sent + received) // 2

    def exchange_ms(self, local: int) -> int:
        """A local time on the exchange's clock (the local clock until the offset is known)."""
        return local + (self.offset_ms or 0)

    async def newest_trade(self, symbol: str, last_price: str) -> Newest | None:
        """The exchange's newest trade of `symbol` (None: it has none). `RestFailure` when REST
        did not answer, or answered a trade that cannot be this symbol's (`RestBadAnswer`)."""
        if self.offset_ms is None:
            await self.sync_clock()
        if self.stream == "aggTrade":
            aggregates = await self.rest.agg_trades(symbol, limit=1)
            found = [Newest(a.id, a.time, a.price) for a in aggregates]
        else:
            trades = await self.rest.recent_trades(symbol, 1)
            found = [Newest(t.id, t.time, t.price) for t in trades]
        if not found:
            return None
        newest = found[-1]
        try:
            check_price(newest.price, float(last_price) if last_price else None, "newest trade")
        except AnswerProblem as exc:
            raise RestBadAnswer(f"{symbol}: {exc}", repr(newest).encode()) from None
        if newest.time > self.exchange_ms(now_ms()) + AHEAD_MS:
            raise RestBadAnswer(
                f"{symbol}: newest trade stamped {newest.time}, ahead of the exchange's clock",
                repr(newest).encode(),
            )
        return newest
