"""A table of records held as columns reads as the records themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.pairstats import Stationarity
from shared.schemas import Alert, Bar, PairStat, SchemaError
from shared.table import Table, column


def stat(ts: int, zscore: float, adf_pvalue: float | None) -> PairStat:
    return PairStat(ts, 100.0, 50.0, 1.0, 2.0, 0.5, zscore, 0.9, 0.0, 1.0, 60, 60, "ols",
                    adf_pvalue=adf_pvalue)  # fmt: skip


def test_records_go_in_as_columns_and_come_out_equal() -> None:
    records = [stat(1000, 1.5, None), stat(2000, math.nan, 0.03), stat(3000, -2.0, None)]
    table = Table.of_records(PairStat, records)
    assert len(table) == 3
    assert table.column("ts").tolist() == [1000, 2000, 3000]
    assert math.isnan(table.column("adf_pvalue")[0])
    assert table[0] == records[0] and table[-1] == records[-1]
    assert table[1].adf_pvalue == 0.03 and math.isnan(table[1].zscore)
    assert table[1].adf_stat is None
    assert [s.ts for s in table] == [1000, 2000, 3000]
    iterated = list(table)
    assert iterated[0] == records[0] and iterated[2] == records[2]
    assert iterated[0].adf_pvalue is None and iterated[1].adf_pvalue == 0.03
    assert type(table[0].ts) is int and type(table[0].method) is str
    assert [s.ts for s in table[1:]] == [2000, 3000]
    assert [s.ts for s in table.from_value("ts", 1500)] == [2000, 3000]
    assert len(table.from_value("ts", 9999)) == 0
    assert column(table, "zscore")[0] == 1.5
    np.testing.assert_array_equal(column(records, "adf_pvalue"), table.column("adf_pvalue"))


def test_a_table_refuses_missing_or_uneven_columns() -> None:
    columns = {name: np.zeros(2) for name in ("start", "open", "high", "low", "close", "volume")}
    with pytest.raises(ValueError, match="needs columns vwap, trades"):
        Table(Bar, columns)
    with pytest.raises(ValueError, match="differ in length"):
        Table(Bar, {**columns, "vwap": np.zeros(2), "trades": np.zeros(3)})
    assert len(Table.of_records(Bar, [])) == 0


def stat_fields(i: int) -> dict[str, str]:
    """Varied statistics entries as the worker writes them: every third with the stationarity
    values, some with a NaN z-score, one with a huge and one with a tiny spread."""
    fields = stat(1_000 * i, (-1) ** i * i / 7, 0.01 * i if i % 3 == 0 else None).to_fields()
    if i % 5 == 0:
        fields["zscore"] = "nan"
    fields["spread"] = repr([1e300, 5e-324, -0.0, 12.5][i % 4])
    return {str(k): str(v) for k, v in fields.items()}


def test_entries_read_as_columns_equal_the_records_read_one_by_one() -> None:
    entries = [stat_fields(i) for i in range(40)]
    table = PairStat.table_of_fields(entries)
    assert table.column("ts").dtype == np.int64 and table.column("beta").dtype == np.float64
    assert repr(list(table)) == repr([PairStat.from_fields(e) for e in entries])
    alerts = [Alert("r1", "BTCUSDT-ETHUSDT", "1s", "zscore", 2.5, 2.0, 7).to_fields(),
              {"rule": "r2", "pair": "A-B", "tf": "1m", "metric": "corr", "value": "-0.5",
               "threshold": "0.1", "ts": "9"}]  # fmt: skip
    texts = [{str(k): str(v) for k, v in a.items()} for a in alerts]
    assert list(Alert.table_of_fields(texts)) == [Alert.from_fields(a) for a in texts]
    assert Alert.table_of_fields(texts)[1].message == ""
    empty = Bar.table_of_fields([])
    assert len(empty) == 0 and empty.column("start").dtype == np.int64


@pytest.mark.parametrize(
    ("change", "reason", "fails_alone"),
    [
        ({"ts": None}, "missing field 'ts'", True),
        ({"ts": "1.5"}, "'ts' is not an integer", True),
        ({"beta": "x"}, "'beta' is not a number", True),
        ({"adf_pvalue": "p"}, "'adf_pvalue' is not a number", True),
        # The one difference, documented: a column holds 64-bit integers, a record any integer.
        ({"window": str(2**70)}, "'window' is not an integer", False),
    ],
)  # fmt: skip
def test_an_entry_that_does_not_parse_fails_the_columns_as_it_fails_alone(
    change: dict[str, str | None], reason: str, fails_alone: bool
) -> None:
    bad = {k: v for k, v in {**stat_fields(3), **change}.items() if v is not None}
    with pytest.raises(SchemaError, match=reason):
        PairStat.table_of_fields([stat_fields(1), bad, stat_fields(2)])
    if fails_alone:
        with pytest.raises(SchemaError, match=reason):
            PairStat.from_fields(bad)
    else:
        assert PairStat.from_fields(bad).window == 2**70


def test_tables_join_in_order_and_only_of_one_record() -> None:
    first = PairStat.table_of_fields([stat_fields(i) for i in range(3)])
    second = PairStat.table_of_fields([stat_fields(i) for i in range(3, 5)])
    joined = first.joined(second)
    assert [s.ts for s in joined] == [0, 1_000, 2_000, 3_000, 4_000]
    assert joined.column("ts").dtype == np.int64 and joined.column("method").dtype == object
    assert repr(list(joined)) == repr([*first, *second])
    with pytest.raises(ValueError, match="cannot take Bar"):
        first.joined(Bar.table_of_fields([]))


@pytest.mark.parametrize("carried_at", [[], [0], [3, 17], [39], list(range(0, 40, 10))])
def test_the_newest_stationarity_values_are_found_in_a_table_as_in_records(
    carried_at: list[int],
) -> None:
    records = [stat(i, 0.1 * i, 0.001 * (i + 1) if i in carried_at else None) for i in range(40)]
    before = Stationarity(adf_pvalue=0.5)
    for previous in (None, before):
        in_records = Stationarity.newest(records, previous)
        in_table = Stationarity.newest(Table.of_records(PairStat, records), previous)
        assert in_table == in_records
        assert in_table == (previous if not carried_at else Stationarity(
            adf_pvalue=0.001 * (carried_at[-1] + 1)))  # fmt: skip
