"""One row of the market screener: a served pair's newest statistics with the stationarity
values it carries and when they were computed, as the worker publishes it on
`analytics:screen:<tf>[:w<W>:<method>]` (field: the pair, value: the row as JSON). No I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from shared.pairstats import Stationarity
from shared.schemas import PairStat, SchemaError


@dataclass(frozen=True, slots=True)
class ScreenRow:
    """A pair's values in the screener; the stationarity values are the newest computed
    (`adf_ts` is the bar they were computed on), carried between the bars that compute them."""

    a: str
    b: str
    ts: int
    """Bar time of the statistics."""
    n: int
    window: int
    method: str
    zscore: float
    beta: float
    alpha: float
    corr: float
    spread_std: float
    adf_pvalue: float | None = None
    coint_pvalue: float | None = None
    half_life: float | None = None
    """In bars."""
    adf_ts: int | None = None

    @property
    def pair(self) -> str:
        return f"{self.a}-{self.b}"

    @classmethod
    def of(
        cls, a: str, b: str, stat: PairStat, carried: Stationarity, carried_ts: int | None
    ) -> ScreenRow:
        return cls(
            a, b, stat.ts, stat.n, stat.window, stat.method, stat.zscore, stat.beta, stat.alpha,
            stat.corr, stat.spread_std, carried.adf_pvalue, carried.coint_pvalue,
            carried.half_life, carried_ts,
        )  # fmt: skip

    def to_json(self) -> str:
        values = {k: None if isinstance(v, float) and not math.isfinite(v) else v
                  for k, v in asdict(self).items()}  # fmt: skip
        return orjson.dumps(values).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> ScreenRow:
        """A row as published; `SchemaError` says what is wrong. NaN travels as null: a
        required number that is null reads back as NaN."""
        try:
            values = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SchemaError(f"a screener row is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise SchemaError("a screener row is not a JSON object")
        return cls(**_checked(values))


_KINDS = {"str": str, "int": int, "float": float, "float | None": float, "int | None": int}


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in fields(ScreenRow):
        kind = str(spec.type)
        optional = kind.endswith("| None")
        value = values.get(spec.name)
        if value is None:
            if optional:
                out[spec.name] = None
            elif kind == "float" and spec.name in values:
                out[spec.name] = math.nan
            else:
                raise SchemaError(f"a screener row lacks {spec.name!r}")
            continue
        wanted = _KINDS[kind]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if wanted is str and not isinstance(value, str):
            raise SchemaError(f"{spec.name!r} of a screener row is not text: {value!r}")
        if wanted is int and not (isinstance(value, int) and not isinstance(value, bool)):
            raise SchemaError(f"{spec.name!r} of a screener row is not an integer: {value!r}")
        if wanted is float and not number:
            raise SchemaError(f"{spec.name!r} of a screener row is not a number: {value!r}")
        out[spec.name] = float(value) if wanted is float else value
    return out
