"""Back-filled ticks from REST answers: pure, exact, and checked against what was asked.

Three ways to fill a gap, by what the exchange lets us ask:

- `historicalTrades` (with `BINANCE_API_KEY`): the exact trades; one tick each, source `rest`.
- `aggTrades` for an `@aggTrade` stream: the gap is in aggregate ids; one tick per aggregate.
- `aggTrades` for a `@trade` stream without a key: an aggregate covers trade ids `f..l` of one
  taker order, at one price, time and side. Each aggregate overlapping the missing ids becomes
  one tick (source `rest-agg`) covering the missing ids inside `f..l`; its size is the
  aggregate's minus the sizes of the trades of `f..l` already accounted for (received on the
  socket, or back-filled before). So an aggregate cut by a gap's edge adds exactly what was
  missed, and no trade id is ever covered by two ticks. When the missing ids of one aggregate
  fall into several runs (a received trade between them), the size is shared among the runs
  by their number of ids; the runs share one time, so every second's volume stays exact.

An answer that does not fit the question (ids below the one asked for, times outside the
window, prices far from the symbol's own) is an `AnswerProblem`: dead-lettered, and asked
again. Ids REST does not list are not market trades (insurance fund, ADL), or older than REST
serves: they are counted as unlisted, never invented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.ingestor.gaps import Gap
from services.ingestor.rest_records import AggTrade, RestTrade
from shared.schemas import Side, Tick, TickSource

IdRun = tuple[int, int]
"""Trade ids `first..last`, both included."""
PRICE_BAND = 2.0
"""A REST price more than this factor away from the symbol's own recent price is not its."""


class AnswerProblem(ValueError):
    """A REST answer that does not fit the request; the message says how."""


class NeedIds(Exception):
    """An aggregate's other trades are not all accounted for yet (still on their way)."""

    def __init__(self, runs: list[IdRun]) -> None:
        super().__init__(", ".join(f"{a}..{b}" for a, b in runs))
        self.runs = runs


@dataclass(frozen=True, slots=True)
class Known:
    """Trades of one symbol already accounted for near a gap."""

    sizes: Mapping[int, str] = field(default_factory=dict)
    """Trade id -> size of the ticks received on the socket."""
    ranges: Sequence[tuple[int, int, str]] = ()
    """(first id, last id, size) of ticks back-filled before."""


@dataclass(frozen=True, slots=True)
class Filled:
    """What one REST answer fills."""

    ticks: list[Tick]
    through: int
    """Every id up to this one is done (filled, or not listed by REST)."""
    unlisted: list[IdRun]
    """Id runs up to `through` that REST does not list."""

    @property
    def unlisted_ids(self) -> int:
        return sum(last - first + 1 for first, last in self.unlisted)


def runs_without(first: int, last: int, taken: Sequence[int]) -> list[IdRun]:
    """The runs of `first..last` not in `taken` (ascending ids)."""
    runs: list[IdRun] = []
    start = first
    for trade_id in taken:
        if trade_id < start:
            continue
        if trade_id > last:
            break
        if trade_id > start:
            runs.append((start, trade_id - 1))
        start = trade_id + 1
    if start <= last:
        runs.append((start, last))
    return runs


def as_runs(ids: Sequence[int]) -> list[IdRun]:
    """Ascending ids as runs of consecutive ids."""
    runs: list[IdRun] = []
    for trade_id in ids:
        if runs and trade_id == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], trade_id)
        else:
            runs.append((trade_id, trade_id))
    return runs


def check_price(price: str, reference: float | None, what: str) -> None:
    if reference is None or reference <= 0:
        return
    value = float(price)
    if not reference / PRICE_BAND <= value <= reference * PRICE_BAND:
        raise AnswerProblem(
            f"{what} at price {price} is far from the symbol's recent price {reference:g}: "
            "an answer for another symbol?"
        )


def _side(buyer_maker: bool) -> Side:
    return "sell" if buyer_maker else "buy"


def fill_from_trades(
    gap: Gap,
    from_id: int,
    trades: Sequence[RestTrade],
    *,
    page_limit: int,
    recv_ts: int,
    reference_price: float | None,
) -> Filled:
    """The ticks of one `historicalTrades` answer asked `fromId=from_id`, for `gap`."""
    for trade in trades:
        if trade.id < from_id:
            raise AnswerProblem(f"trade id {trade.id} is below the fromId {from_id} asked for")
        check_price(trade.price, reference_price, f"trade {trade.id}")
    inside = [t for t in trades if t.id <= gap.last]
    full_page = len(trades) >= page_limit
    through = trades[-1].id if full_page and trades[-1].id < gap.last else gap.last
    ticks = [
        Tick(t.time, gap.symbol, t.price, t.qty, t.id, _side(t.buyer_maker), recv_ts, None, "rest")
        for t in inside
    ]
    unlisted = runs_without(from_id, through, [t.id for t in inside])
    return Filled(ticks, through, unlisted)


def fill_from_aggregate_ids(
    gap: Gap,
    from_id: int,
    aggregates: Sequence[AggTrade],
    *,
    page_limit: int,
    recv_ts: int,
    reference_price: float | None,
) -> Filled:
    """For an `@aggTrade` stream, whose ids are aggregate ids: one `aggTrades?fromId=` answer."""
    for aggregate in aggregates:
        if aggregate.id < from_id:
            raise AnswerProblem(
                f"aggregate id {aggregate.id} is below the fromId {from_id} asked for"
            )
        check_price(aggregate.price, reference_price, f"aggregate {aggregate.id}")
    inside = [a for a in aggregates if a.id <= gap.last]
    full_page = len(aggregates) >= page_limit
    through = aggregates[-1].id if full_page and aggregates[-1].id < gap.last else gap.last
    ticks = [
        Tick(
            a.time, gap.symbol, a.price, a.qty, a.id, _side(a.buyer_maker), recv_ts,
            None, "rest-agg",
        )
        for a in inside
    ]  # fmt: skip
    unlisted = runs_without(from_id, through, [a.id for a in inside])
    return Filled(ticks, through, unlisted)


def check_aggregates(
    aggregates: Sequence[AggTrade],
    *,
    from_id: int | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    reference_price: float | None = None,
) -> None:
    """An `aggTrades` answer fits its request: ids from `from_id` on, times inside
    `[start_ms, end_ms]`, prices the symbol's own. `AnswerProblem` otherwise."""
    for aggregate in aggregates:
        if from_id is not None and aggregate.id < from_id:
            raise AnswerProblem(
                f"aggregate id {aggregate.id} is below the fromId {from_id} asked for"
            )
        if start_ms is not None and end_ms is not None and not start_ms <= aggregate.time <= end_ms:
            raise AnswerProblem(
                f"aggregate {aggregate.id} at time {aggregate.time} is outside the window "
                f"{start_ms}..{end_ms} asked for"
            )
        check_price(aggregate.price, reference_price, f"aggregate {aggregate.id}")


def _decimal_text(value: Decimal) -> str:
    """A plain decimal, as the tick contract wants it (`1E+1` becomes `10`)."""
    return format(value.normalize(), "f")


def _share(total: Decimal, runs: Sequence[IdRun]) -> list[Decimal]:
    """`total` split over `runs` by their number of ids; the parts sum to `total` exactly."""
    if len(runs) == 1:
        return [total]
    counts = [last - first + 1 for first, last in runs]
    whole = sum(counts)
    parts = [total * count / whole for count in counts[:-1]]
    parts.append(total - sum(parts, Decimal(0)))
    return parts


def aggregate_ticks(
    symbol: str, aggregate: AggTrade, missing: Sequence[IdRun], known: Known, *, recv_ts: int
) -> list[Tick]:
    """The ticks that fill the `missing` runs (ascending, inside `f..l`) of one aggregate.

    Every other id of `f..l` must be accounted for in `known`: `NeedIds` names those that are
    not. `AnswerProblem` when what is known already reaches the aggregate's size."""
    first, last = aggregate.first_id, aggregate.last_id
    if not missing:
        return []
    missing_ids = {i for a, b in missing for i in range(a, b + 1)}
    covered_by_ranges: set[int] = set()
    known_size = Decimal(0)
    for range_first, range_last, range_size in known.ranges:
        if range_last < first or range_first > last:
            continue
        if range_first < first or range_last > last:
            raise AnswerProblem(
                f"aggregate {aggregate.id} (trade ids {first}..{last}) cuts a tick back-filled "
                f"before ({range_first}..{range_last})"
            )
        covered_by_ranges.update(range(range_first, range_last + 1))
        known_size += Decimal(range_size)
    unknown: list[int] = []
    for trade_id in range(first, last + 1):
        if trade_id in missing_ids or trade_id in covered_by_ranges:
            continue
        received = known.sizes.get(trade_id)
        if received is None:
            unknown.append(trade_id)
        else:
            known_size += Decimal(received)
    if unknown:
        raise NeedIds(as_runs(unknown))
    rest = Decimal(aggregate.qty) - known_size
    if rest <= 0:
        raise AnswerProblem(
            f"aggregate {aggregate.id} of size {aggregate.qty} is no larger than the "
            f"{_decimal_text(known_size)} of its trades already received"
        )
    source: TickSource = "rest-agg"
    side = _side(aggregate.buyer_maker)
    return [
        Tick(
            aggregate.time, symbol, aggregate.price, _decimal_text(part), run_first,
            side, recv_ts, run_last, source,
        )
        for (run_first, run_last), part in zip(missing, _share(rest, missing), strict=True)
    ]  # fmt: skip
