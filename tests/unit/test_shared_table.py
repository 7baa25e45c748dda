"""A table of records held as columns reads as the records themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.schemas import Bar, PairStat
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
