"""Stream entries to table rows: the fast path accepts exactly what the `Tick` contract accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.writer.consumer import TRIMMED, Batch, tick_row
from shared.schemas import TICK_FIELDS, SchemaError, Tick
from testkit.recorded import recorded_ticks
from tests.writer_support import BAD_ENTRIES


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


def _contract(symbol: str, values: list[str]) -> tuple[object, ...] | None:
    """What `Tick.from_fields` (the contract, every field checked) makes of an entry, None
    when it rejects it."""
    if len(values) % 2:
        return None
    it = iter(values)
    try:
        tick = Tick.from_fields(dict(zip(it, it, strict=True)), symbol)
    except SchemaError:
        return None
    return (tick.symbol, tick.trade_id, tick.ts, tick.price, tick.size, tick.side, tick.recv_ts)


def _ours(symbol: str, values: list[str]) -> tuple[object, ...] | None:
    try:
        return tick_row(symbol, values)
    except (SchemaError, ValueError):
        return None


def test_recorded_ticks_become_their_rows() -> None:
    for tick in recorded_ticks(2_000):
        row = tick_row(tick.symbol, _flat(dict(tick.to_fields())))  # type: ignore[arg-type]
        assert row == _contract(tick.symbol, _flat(dict(tick.to_fields())))  # type: ignore[arg-type]
        assert row[:3] == (tick.symbol, tick.trade_id, tick.ts)


VALUE = st.one_of(
    st.sampled_from(["1", "0", "-5", "+7", " 8", "1_000", "1.5", "8e4", "", "buy", "sell", "x"]),
    st.sampled_from(["BTCUSDT", "ETHUSDT", "87162.10", "0.003", str(2**63), str(-(2**63))]),
    st.sampled_from(["12\n", "\u0661\u0662", "0.000", "9" * 400, "0." + "0" * 400 + "1", "007"]),
    st.text(max_size=6),
)


@given(
    st.fixed_dictionaries({name: VALUE for name in TICK_FIELDS}),
    st.booleans(),
    st.sampled_from([None, "ts", "price", "side"]),
)
def test_fast_path_agrees_with_the_contract(
    fields: dict[str, str], shuffle: bool, drop: str | None
) -> None:
    if drop:
        del fields[drop]
    values = _flat(dict(reversed(fields.items())) if shuffle else fields)
    assert _ours("BTCUSDT", values) == _contract("BTCUSDT", values)


@given(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.decimals(min_value="0.00000001", max_value=10**9, places=8, allow_nan=False),
    st.sampled_from(["buy", "sell"]),
)
def test_any_valid_tick_is_accepted_exactly(
    ts: int, trade_id: int, price: object, side: str
) -> None:
    tick = Tick(ts, "ETHUSDT", format(price, "f"), "0.001", trade_id, side, ts)  # type: ignore[arg-type]
    values = _flat(dict(tick.to_fields()))  # type: ignore[arg-type]
    assert tick_row("ETHUSDT", values) == (
        "ETHUSDT", trade_id, ts, tick.price, "0.001", side, ts,
    )  # fmt: skip


@pytest.mark.parametrize(("symbol", "fields", "what"), BAD_ENTRIES)
def test_bad_entries_are_rejected_naming_the_fault(
    symbol: str, fields: dict[str, str], what: str
) -> None:
    with pytest.raises(SchemaError, match=what if what != "missing" else "missing field"):
        tick_row(symbol, _flat(fields))


def test_batch_keeps_every_id_and_sorts_rows_from_rejects() -> None:
    good = [tick.to_fields() for tick in recorded_ticks(40) if tick.symbol == "BTCUSDT"]
    bad = BAD_ENTRIES[0][1]
    entries = [(f"1765892498{n:03d}-0", _flat(dict(f))) for n, f in enumerate(good)]  # type: ignore[arg-type]
    entries += [("1765892499000-0", _flat(bad)), ("1765892499001-0", None)]  # type: ignore[list-item,arg-type]
    batch = Batch()
    batch.add("ticks:BTCUSDT", "BTCUSDT", entries)
    assert len(batch) == len(entries)
    assert len(batch.rows) == len(good)
    assert [r.reason for r in batch.rejects] == ["missing field 'side'", TRIMMED]
    assert batch.trimmed == 1
    assert batch.oldest_ms == 1765892498000
    other = Batch()
    other.add("ticks:BTCUSDT", "BTCUSDT", [("1765892400000-5", None)])
    batch.merge(other)
    assert (len(batch), batch.trimmed, batch.oldest_ms) == (len(entries) + 1, 2, 1765892400000)
    assert batch.rejects[0].raw().startswith('{"stream":"ticks:BTCUSDT","id":"1765892499000-0"')
