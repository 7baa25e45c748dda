"""The pure frame parser, on hand-made frames and on real recorded Binance frames."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingestor.binance import (
    MAX_FRAME_BYTES,
    FrameError,
    NonMarketPrint,
    decode_frame,
    parse_frame,
    parse_tick,
)
from shared.schemas import Tick
from testkit.processes import REPO

RAW_FRAMES = REPO / "tests/fixtures/binance/binance-futures-raw-frames.ws.txt"
TRADE = {
    "e": "trade", "E": 1765892498712, "T": 1765892498698, "s": "BTCUSDT", "t": 6905373851,
    "p": "87162.10", "q": "0.003", "X": "MARKET", "m": True,
}  # fmt: skip


def frame(**changes: object) -> bytes:
    return orjson.dumps({**TRADE, **changes})


def fixture_frames(path: Path = RAW_FRAMES) -> list[bytes]:
    """The recorded frames: every line after the URL is `<epoch s>: <frame>`."""
    lines = path.read_bytes().splitlines()[1:]
    return [line.split(b": ", 1)[1] for line in lines if line.strip()]


def test_a_trade_event_becomes_a_tick_with_exact_decimals() -> None:
    assert parse_tick(frame(), recv_ts=1765892498720) == Tick(
        ts=1765892498698, symbol="BTCUSDT", price="87162.10", size="0.003",
        trade_id=6905373851, side="sell", recv_ts=1765892498720,
    )  # fmt: skip


def test_buyer_maker_false_means_the_aggressor_bought() -> None:
    tick = parse_tick(frame(m=False), 1)
    assert isinstance(tick, Tick) and tick.side == "buy"


def test_unknown_fields_are_ignored() -> None:
    assert parse_tick(frame(st=1, extra={"x": [1]}), 1) == parse_tick(frame(), 1)


def test_text_and_bytes_frames_parse_alike() -> None:
    assert parse_frame(frame().decode(), 5) == parse_frame(frame(), 5)


@pytest.mark.parametrize("kind", ["NA", "INSURANCE_FUND", "ADL"])
def test_non_market_prints_are_recognised(kind: str) -> None:
    assert parse_frame(frame(X=kind, p="0", q="0"), 1) == NonMarketPrint(
        "BTCUSDT", 6905373851, kind, 1765892498698
    )


@pytest.mark.parametrize(("price", "size"), [("0", "1"), ("0.000", "1"), ("5", "0.0")])
def test_a_market_print_of_zero_price_or_size_is_not_a_tick(price: str, size: str) -> None:
    parsed = parse_frame(frame(p=price, q=size), 1)
    assert isinstance(parsed, NonMarketPrint) and parsed.kind == "ZERO"


def test_agg_trade_takes_its_id_from_a() -> None:
    event = {
        "e": "aggTrade", "E": 1626992741575, "a": 16599292, "s": "CTKUSDT", "p": "1.01100",
        "q": "10", "f": 23961322, "l": 23961322, "T": 1626992741421, "m": False,
    }  # fmt: skip
    assert parse_tick(orjson.dumps(event), 7) == Tick(
        1626992741421, "CTKUSDT", "1.01100", "10", 16599292, "buy", 7
    )


def test_the_combined_stream_envelope_is_unwrapped() -> None:
    wrapped = b'{"stream":"btcusdt@trade","data":' + frame() + b"}"
    assert parse_frame(wrapped, 1) == parse_frame(frame(), 1)


def test_every_recorded_agg_trade_frame_parses_and_every_other_frame_is_refused() -> None:
    trades, refused = [], []
    for raw in fixture_frames():
        stream = orjson.loads(raw)["stream"]
        try:
            parsed = parse_tick(raw, 0)
        except FrameError as exc:
            refused.append((stream, str(exc)))
            continue
        assert stream.endswith("@aggTrade")
        assert isinstance(parsed, Tick)
        trades.append(parsed)
    assert len(trades) == 91
    assert {t.symbol for t in trades} == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    assert all(not stream.endswith("@aggTrade") for stream, _ in refused)
    reasons = {reason for _, reason in refused}
    assert reasons == {
        "not a trade event: e='depthUpdate'",
        "not a trade event: e='bookTicker'",
        "not a trade event: e='kline'",
    }
    for symbol in ("CTKUSDT", "SUSHIUSDT"):
        ids = [t.trade_id for t in trades if t.symbol == symbol]
        assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"{'e': 'trade'}", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object but list"),
        (b"42", "not a JSON object but int"),
        (b'{"stream":"x","data":[1]}', "envelope whose data is not an object"),
        (b'{"result":null,"id":1}', "not a trade event: e=None"),
        (frame(e="depthUpdate"), "not a trade event: e='depthUpdate'"),
        (orjson.dumps({k: v for k, v in TRADE.items() if k != "t"}), "without field 't'"),
        (orjson.dumps({k: v for k, v in TRADE.items() if k != "X"}), "without field 'X'"),
        (orjson.dumps({k: v for k, v in TRADE.items() if k != "m"}), "without field 'm'"),
        (frame(t="6905373851"), "field 't' is not an integer 0..2^63-1"),
        (frame(t=-1), "field 't' is not an integer 0..2^63-1"),
        (frame(t=True), "field 't' is not an integer 0..2^63-1"),
        (frame(T=1.5), "field 'T' is not an integer 0..2^63-1"),
        (frame(t=2**63), "field 't' is not an integer 0..2^63-1: 9223372036854775808"),
        (frame(T=2**64 - 1), "field 'T' is not an integer 0..2^63-1"),
        (frame(p="87162.1\n"), "field 'p' is not a decimal string"),
        (frame(p="9" * 400), "field 'p' is too large: '99999"),
        (frame(p=87162.1), "field 'p' is not a decimal string"),
        (frame(p="8.7e4"), "field 'p' is not a decimal string"),
        (frame(p="-1"), "field 'p' is not a decimal string"),
        (frame(q=".5"), "field 'q' is not a decimal string"),
        (frame(q="1."), "field 'q' is not a decimal string"),
        (frame(q="١٢"), "field 'q' is not a decimal string"),
        (frame(m="true"), "field 'm' is not true or false"),
        (frame(X=1), "field 'X' is not a string"),
        (frame(X="LIQUIDATION"), "unknown execution type X='LIQUIDATION'"),
        (frame(s=None), "unexpected symbol None"),
    ],
)
def test_malformed_frames_raise_a_frame_error_naming_the_problem(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=re.escape(reason)):
        parse_frame(raw, 1)


def test_a_symbol_the_connection_did_not_ask_for_is_refused() -> None:
    with pytest.raises(FrameError, match="unexpected symbol 'BTCUSDT'"):
        parse_frame(frame(), 1, frozenset({"ETHUSDT"}))
    assert parse_frame(frame(), 1, frozenset({"BTCUSDT"}))


def test_frames_over_64_kib_are_refused_before_parsing() -> None:
    padded = frame(pad="x" * MAX_FRAME_BYTES)
    with pytest.raises(FrameError, match=f"frame of {len(padded)} bytes is over the 65536"):
        decode_frame(padded)
    assert decode_frame(frame(pad="x" * (MAX_FRAME_BYTES - 300)))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
"""What JSON can carry (orjson's integers are 64-bit)."""


@given(changes=st.dictionaries(st.sampled_from(sorted(TRADE)), JSON_VALUES, max_size=4))
@settings(max_examples=300, deadline=None)
def test_any_change_to_a_trade_event_parses_or_is_a_frame_error(changes: dict[str, object]) -> None:
    try:
        parse_frame(orjson.dumps({**TRADE, **changes}), 1, frozenset({"BTCUSDT"}))
    except FrameError:
        pass


@given(raw=st.binary(max_size=200) | JSON_VALUES.map(orjson.dumps))
@settings(max_examples=300, deadline=None)
def test_any_bytes_parse_or_are_a_frame_error(raw: bytes) -> None:
    try:
        parse_frame(raw, 1)
    except FrameError:
        pass
