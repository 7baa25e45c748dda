"""Records of one type held column by column: a long series (a day of 1s bars is 86,400 rows)
costs one numpy array per field instead of one Python object per row, and still reads as a
sequence of the records (an entry is built when it is asked for).

A field that may be None (`float | None`) holds NaN for None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any, Generic, TypeVar, overload

import numpy as np

R = TypeVar("R")


def _optional_fields(record: type[Any]) -> frozenset[str]:
    return frozenset(field.name for field in fields(record) if "None" in str(field.type))


class Table(Sequence[R], Generic[R]):
    """The rows of `record` as columns, one array per field, all of one length."""

    __slots__ = ("_optional", "columns", "record")

    def __init__(self, record: type[R], columns: Mapping[str, np.ndarray]) -> None:
        names = [field.name for field in fields(record)]  # type: ignore[arg-type]
        missing = [name for name in names if name not in columns]
        if missing:
            raise ValueError(f"a {record.__name__} table needs columns {', '.join(missing)}")
        lengths = {name: len(columns[name]) for name in names}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"the columns of a {record.__name__} table differ in length: {lengths}"
            )
        self.record = record
        self.columns = {name: columns[name] for name in names}
        self._optional = _optional_fields(record)

    @classmethod
    def of_records(cls, record: type[R], rows: Iterable[R]) -> Table[R]:
        listed = list(rows)
        columns: dict[str, np.ndarray] = {}
        for field in fields(record):  # type: ignore[arg-type]
            values = [getattr(row, field.name) for row in listed]
            if field.name in _optional_fields(record):
                values = [math.nan if v is None else v for v in values]
            columns[field.name] = np.asarray(values) if values else np.zeros(0)
        return cls(record, columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> Table[R]: ...

    def __getitem__(self, index: int | slice) -> R | Table[R]:
        if isinstance(index, slice):
            return Table(self.record, {name: c[index] for name, c in self.columns.items()})
        values: dict[str, Any] = {}
        for name, column in self.columns.items():
            value = column[index]
            value = value.item() if isinstance(value, np.generic) else value
            values[name] = None if name in self._optional and value != value else value
        return self.record(**values)

    def __iter__(self) -> Iterator[R]:
        lists = []
        for name, column in self.columns.items():
            values = column.tolist()
            if name in self._optional:
                values = [None if v != v else v for v in values]
            lists.append(values)
        record = self.record
        for row in zip(*lists, strict=True):
            yield record(*row)

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]

    def joined(self, after: Table[R]) -> Table[R]:
        """These rows, then those of `after` (a table of the same record)."""
        if after.record is not self.record:
            raise ValueError(f"a {self.record.__name__} table cannot take {after.record.__name__}")
        return Table(
            self.record,
            {name: np.concatenate((c, after.columns[name])) for name, c in self.columns.items()},
        )

    def from_value(self, name: str, lowest: float) -> Table[R]:
        """The rows from the first whose `name` (ascending) is at least `lowest`."""
        return self[int(np.searchsorted(self.columns[name], lowest, side="left")) :]


def column(rows: Sequence[Any], name: str) -> np.ndarray:
    """Field `name` of `rows` as a float64 array (NaN for None): a table's own column, else read
    from each record."""
    if isinstance(rows, Table):
        return np.asarray(rows.column(name), dtype=np.float64)
    values = (getattr(row, name) for row in rows)
    return np.fromiter(
        (math.nan if v is None else v for v in values), dtype=np.float64, count=len(rows)
    )
