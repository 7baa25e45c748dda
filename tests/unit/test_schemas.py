"""Stream records round-trip exactly, and a bad entry names its bad field."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.schemas import (
    TICK_FIELDS,
    Alert,
    Bar,
    Event,
    SchemaError,
    Tick,
    check_tick,
    tick_entry,
)

TICK = Tick(
    ts=1765892498698,
    symbol="BTCUSDT",
    price="87162.10",
    size="0.003",
    trade_id=6905373851,
    side="sell",
    recv_ts=1765892498712,
)


def test_tick_fields_are_the_contract() -> None:
    fields = TICK.to_fields()
    assert tuple(fields) == TICK_FIELDS
    assert fields["price"] == "87162.10"
    assert all(isinstance(value, str) for value in fields.values())


def test_tick_round_trip_keeps_exact_decimals() -> None:
    decoded = {str(k): str(v) for k, v in TICK.to_fields().items()}
    assert Tick.from_fields(decoded) == TICK


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price", "8.7e4", "not a plain decimal"),
        ("price", "-1", "not a plain decimal"),
        ("size", "", "not a plain decimal"),
        ("ts", "yesterday", "'ts' is not an integer"),
        ("trade_id", "1.5", "'trade_id' is not an integer"),
        ("side", "long", "not buy or sell"),
        ("symbol", "", "'symbol' is empty"),
    ],
)
def test_bad_tick_field_is_named(field: str, value: str, message: str) -> None:
    fields = {str(k): str(v) for k, v in TICK.to_fields().items()}
    fields[field] = value
    with pytest.raises(SchemaError, match=message):
        Tick.from_fields(fields)


@pytest.mark.parametrize("missing", TICK_FIELDS)
def test_missing_tick_field_is_named(missing: str) -> None:
    fields = {str(k): str(v) for k, v in TICK.to_fields().items() if k != missing}
    with pytest.raises(SchemaError, match=f"missing field '{missing}'"):
        Tick.from_fields(fields)


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e12)


@given(price=finite, volume=finite, trades=st.integers(min_value=0, max_value=10**9))
def test_bar_round_trip_is_exact(price: float, volume: float, trades: int) -> None:
    bar = Bar(1765892460000, price, price * 1.5, price / 2, price, volume, price, trades)
    assert Bar.from_fields({str(k): str(v) for k, v in bar.to_fields().items()}) == bar


def test_event_and_alert_round_trip() -> None:
    event = Event(service="ingestor", kind="gap", symbol="BTCUSDT", detail="ids 5..9", ts=1)
    alert = Alert("r1", "BTCUSDT-ETHUSDT", "1m", "zscore", 2.5, 2.0, 2, "zscore 2.5 > 2")
    assert Event.from_fields({str(k): str(v) for k, v in event.to_fields().items()}) == event
    assert Alert.from_fields({str(k): str(v) for k, v in alert.to_fields().items()}) == alert


TICK_VALUE = st.one_of(
    st.sampled_from(["1", "0", "007", "-5", "+7", " 8", "8 ", "12\n", "1_000", "1.5", ".5", "5."]),
    st.sampled_from(["8e4", "", "buy", "sell", "BTCUSDT", "87162.10", "0.000", "١٢", "NaN"]),
    st.sampled_from([str(2**63 - 1), str(2**63), "9" * 400, "0." + "0" * 400 + "1"]),
    st.text(max_size=6),
)


@given(st.fixed_dictionaries({name: TICK_VALUE for name in TICK_FIELDS}), st.booleans())
def test_the_fast_path_accepts_exactly_what_the_full_check_accepts(
    fields: dict[str, str], reorder: bool
) -> None:
    flat = [part for pair in fields.items() for part in pair]
    try:
        full: object = check_tick(fields, "BTCUSDT")
    except SchemaError as exc:
        full = str(exc)
    ordered = flat if not reorder else flat[2:] + flat[:2]
    try:
        fast: object = tick_entry(ordered, "BTCUSDT")
    except SchemaError as exc:
        fast = str(exc)
    assert fast == full


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price", "87162.10\n", "'price' is not a plain decimal"),
        ("price", "0.000", "'price' is not above zero"),
        ("size", "9" * 400, "'size' is too large"),
        ("ts", "١٢", "'ts' is not an integer 0..2^63-1"),
        ("ts", "+12", "'ts' is not an integer 0..2^63-1"),
        ("trade_id", str(2**63), "'trade_id' is not an integer 0..2^63-1"),
        ("recv_ts", " 12", "'recv_ts' is not an integer 0..2^63-1"),
        ("symbol", "ETHUSDT", "'symbol' is 'ETHUSDT' on the stream of BTCUSDT"),
    ],
)
def test_the_tick_contract_is_strict(field: str, value: str, message: str) -> None:
    fields = {str(k): str(v) for k, v in TICK.to_fields().items()} | {field: value}
    with pytest.raises(SchemaError, match=re.escape(message)):
        tick_entry([part for pair in fields.items() for part in pair], "BTCUSDT")


def test_extreme_but_valid_ticks_are_accepted() -> None:
    fields = {str(k): str(v) for k, v in TICK.to_fields().items()}
    fields |= {"ts": "0", "trade_id": str(2**63 - 1), "price": "0.00000001", "size": "007"}
    assert check_tick(fields, "BTCUSDT")[3] == 2**63 - 1
