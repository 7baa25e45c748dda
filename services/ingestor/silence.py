"""What a connection's silence means, judged against the exchange's newest trade (pure).

A quiet symbol may have no trade for minutes, so silence alone proves nothing. When a
connection has delivered nothing for `BINANCE_STALE_TIMEOUT_S`, the ingestor asks REST for the
newest trade (`GET /fapi/v1/trades?limit=1`) and `judge` decides:

- the exchange has not traded since the connection opened, or has nothing newer than the last
  trade received: the symbol is quiet, nothing to do;
- it traded since, and this route never delivered in this run: the route is silent, try the
  next one;
- it traded since, and this route has delivered before: the connection is stuck, reconnect;
- in every case, trades newer than the last one received (if any was) were missed: a gap up to
  the exchange's newest id, back-filled like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

SILENCE_MARGIN_MS = 1_000
"""A trade this close to the connection's opening (exchange clock) proves nothing: the clock
offset is measured, not exact."""


class Verdict(Enum):
    QUIET = "quiet"
    """No trade on the exchange since the connection opened."""
    SILENT_ROUTE = "silent_route"
    """The exchange traded, the socket did not, and this route never delivered: move on."""
    STUCK = "stuck"
    """The exchange traded, the socket did not, on a route that has delivered: reconnect."""


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    missed_through: int | None = None
    """The exchange's newest trade id, when trades after the last one received were missed."""


def judge(
    *,
    opened_ms: int,
    newest_id: int | None,
    newest_ms: int | None,
    last_id: int,
    route_delivered: bool,
) -> Judgement:
    """`opened_ms`: when the connection opened, on the exchange's clock. `newest_id`,
    `newest_ms`: the exchange's newest trade (None: it has none). `last_id`: the newest id this
    ingestor has (-1: none yet, so nothing can be called missed)."""
    if newest_id is None or newest_ms is None or (0 <= last_id and newest_id <= last_id):
        return Judgement(Verdict.QUIET)
    missed = newest_id if 0 <= last_id < newest_id else None
    if newest_ms <= opened_ms + SILENCE_MARGIN_MS:
        return Judgement(Verdict.QUIET, missed)
    verdict = Verdict.STUCK if route_delivered else Verdict.SILENT_ROUTE
    return Judgement(verdict, missed)
