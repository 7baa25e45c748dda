"""The live feed's pure decisions: routes, silence, the REST budget, REST answers, gap records and
back-filled ticks."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from services.ingestor.backfill import (
    AnswerProblem,
    Known,
    NeedIds,
    aggregate_ticks,
    as_runs,
    check_aggregates,
    fill_from_aggregate_ids,
    fill_from_trades,
    runs_without,
)
from services.ingestor.binance import TickRow
from services.ingestor.budget import BAN_DEFAULT_S, WeightBudget
from services.ingestor.gaps import Gap, merged
from services.ingestor.intake import Intake
from services.ingestor.notices import Notices
from services.ingestor.rest_records import (
    AggTrade,
    RestAnswerError,
    RestTrade,
    parse_agg_trades,
    parse_error,
    parse_server_time,
    parse_trades,
)
from services.ingestor.routes import Endpoint, RouteChoice, route_label
from services.ingestor.silence import SILENCE_MARGIN_MS, Verdict, judge
from shared.redis_io import client
from shared.schemas import DECIMAL_PATTERN

HOST = "wss://fstream.binance.com"


# Routes.


def test_the_table_routes_trade_to_public_and_aggtrade_to_market_then_the_others() -> None:
    endpoint = Endpoint.from_url(HOST)
    assert endpoint == Endpoint(HOST, None)
    assert endpoint.candidates("trade") == ("/public", "", "/market")
    assert endpoint.candidates("aggTrade") == ("/market", "", "/public")
    assert endpoint.url("/public", "BTCUSDT", "trade") == f"{HOST}/public/ws/btcusdt@trade"
    assert endpoint.url("", "ETHUSDT", "aggTrade") == f"{HOST}/ws/ethusdt@aggTrade"
    assert endpoint.note("trade") is None
    assert [route_label(p) for p in endpoint.candidates("trade")] == [
        "/public",
        "unrouted",
        "/market",
    ]


def test_an_old_style_url_pins_its_path_first_and_says_so() -> None:
    endpoint = Endpoint.from_url(f"{HOST}/market/")
    assert (endpoint.host, endpoint.pinned) == (HOST, "/market")
    assert endpoint.candidates("trade") == ("/market", "/public", "")
    note = endpoint.note("trade")
    assert note is not None and note.startswith("BINANCE_WS_URL ends in a path (/market)")
    assert f"set it to {HOST}" in note


def test_a_route_that_delivered_is_kept_and_silence_moves_through_every_candidate() -> None:
    choice = RouteChoice(("/public", "", "/market"))
    choice.proven_silent()
    assert choice.path == "" and not choice.everywhere_silent
    choice.proven_silent()
    assert choice.path == "/market"
    choice.proven_silent()
    assert choice.path == "/public" and choice.everywhere_silent
    assert choice.delivering() is True and not choice.everywhere_silent
    assert choice.delivering() is False
    assert choice.unproven_silence(1) is False  # delivered: kept
    fresh = RouteChoice(("/public", ""))
    assert fresh.unproven_silence(2) is False
    assert fresh.unproven_silence(2) is True and fresh.path == ""


# Silence.


@pytest.mark.parametrize(
    ("newest_ms", "last_id", "delivered", "verdict", "missed"),
    [
        (None, 10, False, Verdict.QUIET, None),
        (5_000 + SILENCE_MARGIN_MS, 10, False, Verdict.QUIET, 12),
        (4_000, 12, True, Verdict.QUIET, None),
        (7_000, 10, False, Verdict.SILENT_ROUTE, 12),
        (7_000, -1, False, Verdict.SILENT_ROUTE, None),
        (7_000, 10, True, Verdict.STUCK, 12),
        (60_000, 12, True, Verdict.QUIET, None),  # nothing newer than what was received
        (60_000, 15, False, Verdict.QUIET, None),
    ],
)
def test_silence_is_judged_by_the_exchanges_newest_trade(
    newest_ms: int | None, last_id: int, delivered: bool, verdict: Verdict, missed: int | None
) -> None:
    judgement = judge(
        opened_ms=5_000,
        newest_id=None if newest_ms is None else 12,
        newest_ms=newest_ms,
        last_id=last_id,
        route_delivered=delivered,
    )
    assert (judgement.verdict, judgement.missed_through) == (verdict, missed)


# Claims.


def intake() -> Intake:
    notices = Notices(client("redis://127.0.0.1:1/0"), "ingestor", maxlen_events=100,
                      maxlen_deadletter=100)  # fmt: skip
    live = Intake(["BTCUSDT"], 100, notices, record_gaps=True)
    live.tick(TickRow(1_000, "BTCUSDT", "10.5", "1", 10, "buy", 1_001))
    return live


def test_a_claim_opens_the_gap_rest_revealed_and_moves_the_sequence_past_it() -> None:
    live = intake()
    gap = live.claim("BTCUSDT", 15, 1_900)
    assert gap == Gap("BTCUSDT", 11, 15, 1_000, 1_900)
    assert live.take_opened() == (gap,) and live.take_opened() == ()
    state = live.state("BTCUSDT")
    assert (state.last_id, state.gaps, state.missing) == (15, 1, 5)
    assert live.claim("BTCUSDT", 15, 2_000) is None
    live.tick(TickRow(2_000, "BTCUSDT", "10.5", "1", 14, "buy", 2_001))  # covered by the claim
    assert state.dropped == 1


def test_a_claim_far_beyond_what_the_time_allows_is_refused_as_corrupt() -> None:
    live = intake()
    assert live.claim("BTCUSDT", 10 + 10**9, 1_001) is None
    assert live.state("BTCUSDT").last_id == 10
    assert live.deadlettered == 1 and live.take_opened() == ()
    assert live.claim("BTCUSDT", 5, 1_001) is None  # nothing received after it is missing


# Budget.


def test_the_budget_never_lets_more_than_its_weight_go_in_any_minute() -> None:
    budget = WeightBudget(per_min=50)
    for at in (0.0, 1.0):
        assert budget.delay(20, at) == 0
        budget.spend(20, at)
    assert budget.delay(20, 2.0) == pytest.approx(58.0)  # until the first spend expires
    assert budget.delay(10, 2.0) == 0
    assert budget.delay(20, 60.0) == 0 and budget.used(60.0) == 20


def test_429_backs_off_more_each_time_and_418_stops_everything_for_retry_after() -> None:
    budget = WeightBudget(per_min=1_000)
    assert budget.throttled(0.0, None) == 1.0
    assert budget.throttled(0.0, None) == 2.0
    assert budget.throttled(0.0, 5.0) == 5.0
    assert budget.delay(1, 4.0) == pytest.approx(1.0)
    budget.succeeded()
    assert budget.throttled(10.0, None) == 1.0
    assert budget.banned(20.0, 30.0) == 30.0 and budget.delay(1, 49.0) == pytest.approx(1.0)
    assert budget.banned(100.0, None) == BAN_DEFAULT_S


# REST answers.


def test_rest_answers_parse_into_records_and_name_what_is_wrong() -> None:
    trades = parse_trades(
        b'[{"id":7,"price":"4.1","qty":"12","quoteQty":"49.2","time":1499865549590,'
        b'"isBuyerMaker":true}]'
    )
    assert trades == [RestTrade(7, "4.1", "12", 1499865549590, True)]
    aggregates = parse_agg_trades(b'[{"a":1,"p":"0.5","q":"4","f":10,"l":12,"T":9,"m":false}]')
    assert aggregates == [AggTrade(1, "0.5", "4", 10, 12, 9, False)]
    assert parse_server_time(b'{"serverTime":1499827319559}') == 1499827319559
    error = parse_error(b'{"code":-1121,"msg":"Invalid symbol."}')
    assert error is not None and (error.code, error.msg) == (-1121, "Invalid symbol.")
    assert parse_error(b"<html>") is None
    bad = {
        b"<html>": "not JSON",
        b'{"id":1}': "not a JSON list",
        b"[1]": "item 0 is not an object",
        b'[{"id":1,"price":"1","time":1,"isBuyerMaker":true}]': "item 0: field 'qty'",
        b'[{"id":1,"price":"-1","qty":"1","time":1,"isBuyerMaker":true}]': "above zero",
        b'[{"id":1,"price":"1","qty":"1","time":1,"isBuyerMaker":1}]': "true or false",
        b'[{"id":2,"price":"1","qty":"1","time":1,"isBuyerMaker":true},'
        b'{"id":1,"price":"1","qty":"1","time":1,"isBuyerMaker":true}]': "ascending",
    }
    for body, reason in bad.items():
        with pytest.raises(RestAnswerError, match=reason):
            parse_trades(body)
    with pytest.raises(RestAnswerError, match="overlap"):
        parse_agg_trades(
            b'[{"a":1,"p":"1","q":"1","f":1,"l":5,"T":1,"m":true},'
            b'{"a":2,"p":"1","q":"1","f":5,"l":6,"T":1,"m":true}]'
        )
    with pytest.raises(RestAnswerError, match="ends"):
        parse_agg_trades(b'[{"a":1,"p":"1","q":"1","f":5,"l":4,"T":1,"m":true}]')


# Gap records.


def test_gap_records_round_trip_and_merge_when_they_overlap() -> None:
    gap = Gap("BTCUSDT", 11, 14, 100, 200)
    assert gap.describe() == "missing trade ids 11..14 (4 trades)"
    assert Gap.decode("BTCUSDT", gap.field, gap.value) == gap
    for field, value in [("x", "1 2 3"), ("5", "4 1 1"), ("5", "9 1")]:
        with pytest.raises(ValueError, match="gap record"):
            Gap.decode("BTCUSDT", field, value)
    joined = merged([Gap("B", 20, 30, 5, 9), Gap("B", 1, 5, 1, 2), Gap("B", 25, 40, 7, 11)])
    assert joined == [Gap("B", 1, 5, 1, 2), Gap("B", 20, 40, 5, 11)]


# Back-filled ticks.


def test_id_runs() -> None:
    assert runs_without(1, 10, [3, 4, 8]) == [(1, 2), (5, 7), (9, 10)]
    assert runs_without(1, 3, []) == [(1, 3)]
    assert as_runs([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]


def trade(i: int, price: str = "100.0") -> RestTrade:
    return RestTrade(i, price, "0.5", 1_000 + i, i % 2 == 0)


def test_historical_trades_fill_their_ids_and_say_what_rest_does_not_list() -> None:
    gap = Gap("BTCUSDT", 10, 20, 0, 0)
    filled = fill_from_trades(
        gap, 10, [trade(i) for i in (10, 11, 13, 20, 21)], page_limit=500, recv_ts=5,
        reference_price=100.0,
    )  # fmt: skip
    assert [t.trade_id for t in filled.ticks] == [10, 11, 13, 20]
    assert {t.source for t in filled.ticks} == {"rest"}
    assert filled.ticks[0].side == "sell" and filled.ticks[1].side == "buy"
    assert (filled.through, filled.unlisted) == (20, [(12, 12), (14, 19)])
    page = fill_from_trades(gap, 10, [trade(10), trade(11)], page_limit=2, recv_ts=5,
                            reference_price=None)  # fmt: skip
    assert page.through == 11  # a full page: ask on from 12
    with pytest.raises(AnswerProblem, match="below the fromId 10"):
        fill_from_trades(gap, 10, [trade(9)], page_limit=500, recv_ts=5, reference_price=None)
    with pytest.raises(AnswerProblem, match="another symbol"):
        fill_from_trades(gap, 10, [trade(10, "2900.1")], page_limit=500, recv_ts=5,
                         reference_price=87_000.0)  # fmt: skip


def test_aggregate_ids_fill_an_aggtrade_stream_exactly() -> None:
    gap = Gap("BTCUSDT", 3, 4, 0, 0)
    aggregates = [AggTrade(i, "1.5", "2", 100 + i, 100 + i, 7, False) for i in (3, 4, 5)]
    filled = fill_from_aggregate_ids(gap, 3, aggregates, page_limit=1_000, recv_ts=1,
                                     reference_price=None)  # fmt: skip
    assert [(t.trade_id, t.covers_through, t.source) for t in filled.ticks] == [
        (3, 3, "rest-agg"), (4, 4, "rest-agg"),
    ]  # fmt: skip
    with pytest.raises(AnswerProblem, match="outside the window"):
        check_aggregates(aggregates, start_ms=8, end_ms=20)


def test_an_aggregate_cut_by_the_gap_adds_exactly_what_was_missed() -> None:
    """Trades 10..15 of one order, 0.010 in all; 10 and 11 received, 15 received, 12..14 missed."""
    aggregate = AggTrade(1, "100.5", "0.010", 10, 15, 1_000, True)
    known = Known({10: "0.001", 11: "0.002", 15: "0.003"})
    (tick,) = aggregate_ticks("BTCUSDT", aggregate, [(12, 14)], known, recv_ts=5)
    assert (tick.trade_id, tick.covers_through, tick.size, tick.price) == (12, 14, "0.004", "100.5")
    assert (tick.ts, tick.side, tick.source) == (1_000, "sell", "rest-agg")


def test_missing_runs_share_the_size_and_sum_to_it_exactly() -> None:
    aggregate = AggTrade(1, "1", "1", 10, 15, 1_000, False)
    known = Known({10: "0.1", 13: "0.2"}, ranges=[(14, 14, "0.3")])
    ticks = aggregate_ticks("BTCUSDT", aggregate, [(11, 12), (15, 15)], known, recv_ts=5)
    assert [(t.trade_id, t.covers_through) for t in ticks] == [(11, 12), (15, 15)]
    assert sum(Decimal(t.size) for t in ticks) == Decimal("0.4")
    assert all(DECIMAL_PATTERN.match(t.size) for t in ticks)


def test_an_aggregate_whose_other_trades_are_unknown_or_too_big_is_not_guessed() -> None:
    aggregate = AggTrade(1, "1", "1", 10, 15, 1_000, False)
    with pytest.raises(NeedIds) as need:
        aggregate_ticks("BTCUSDT", aggregate, [(12, 13)], Known({10: "0.1"}), recv_ts=5)
    assert need.value.runs == [(11, 11), (14, 15)]
    everything = Known({i: "0.25" for i in (10, 11, 14, 15)})
    with pytest.raises(AnswerProblem, match="no larger than"):
        aggregate_ticks("BTCUSDT", aggregate, [(12, 13)], everything, recv_ts=5)
    with pytest.raises(AnswerProblem, match="cuts a tick back-filled before"):
        aggregate_ticks("BTCUSDT", aggregate, [(12, 13)], Known({}, [(8, 11, "0.1")]), recv_ts=5)


def test_a_back_filled_tick_encodes_its_range_for_the_stream() -> None:
    aggregate = AggTrade(1, "1", "1", 10, 12, 1_000, False)
    (tick,) = aggregate_ticks("BTCUSDT", aggregate, [(10, 12)], Known(), recv_ts=5)
    fields = tick.to_fields()
    assert (fields["last_trade_id"], fields["source"]) == ("12", "rest-agg")
    assert orjson.loads(orjson.dumps(fields))["trade_id"] == "10"
