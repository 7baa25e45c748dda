"""Stream records round-trip exactly, and a bad entry names its bad field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.schemas import TICK_FIELDS, Alert, Bar, Event, SchemaError, Tick

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
