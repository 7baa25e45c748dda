"""Asking REST what the exchange has: its clock, and a symbol's newest trade.

The feed asks only when a connection has delivered nothing for `BINANCE_STALE_TIMEOUT_S`
(`silence.py` judges the answer). The clock offset is measured once (`GET /fapi/v1/time`,
weight 1) and again when a probe finds it unknown, so that the time a connection opened can be
compared with the exchange's trade times.
"""

from __future__ import annotations

import logging
import time

from services.ingestor.backfill import PRICE_BAND
from services.ingestor.rest import BinanceRest, RestBadAnswer, RestFailure
from services.ingestor.rest_records import RestTrade

log = logging.getLogger(__name__)

AHEAD_MS = 60_000
"""A newest trade stamped further ahead of the exchange's own clock is not believed."""


def local_ms() -> int:
    return time.time_ns() // 1_000_000


class Prober:
    def __init__(self, rest: BinanceRest) -> None:
        self.rest = rest
        self.offset_ms: int | None = None
        """Exchange clock minus local clock, once measured."""

    async def sync_clock(self) -> None:
        """Measure the offset; failures leave it unknown (logged), to be measured again."""
        sent = local_ms()
        try:
            server = await self.rest.server_time()
        except RestFailure as exc:
            log.warning("exchange clock not measured", extra={"error": str(exc)})
            return
        received = local_ms()
        self.offset_ms = server - (sent + received) // 2

    def exchange_ms(self, local: int) -> int:
        """A local time on the exchange's clock (the local clock until the offset is known)."""
        return local + (self.offset_ms or 0)

    async def newest_trade(self, symbol: str, last_price: str) -> RestTrade | None:
        """The exchange's newest trade of `symbol` (None: it has none). `RestFailure` when REST
        did not answer, or answered a trade that cannot be this symbol's (`RestBadAnswer`)."""
        if self.offset_ms is None:
            await self.sync_clock()
        trades = await self.rest.recent_trades(symbol, 1)
        if not trades:
            return None
        newest = trades[-1]
        if last_price:
            reference = float(last_price)
            if not reference / PRICE_BAND <= float(newest.price) <= reference * PRICE_BAND:
                raise RestBadAnswer(
                    f"{symbol}: newest trade at price {newest.price}, far from the last price "
                    f"{last_price}: an answer for another symbol?",
                    repr(newest).encode(),
                )
        if newest.time > self.exchange_ms(local_ms()) + AHEAD_MS:
            raise RestBadAnswer(
                f"{symbol}: newest trade stamped {newest.time}, ahead of the exchange's clock",
                repr(newest).encode(),
            )
        return newest
