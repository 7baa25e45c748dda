"""One row of the market screener: a served pair's newest statistics with the stationarity
values it carries and when they were computed, as the worker publishes it on
`analytics:screen:<tf>[:w<W>:<method>]` (field: the pair, value: the row as JSON). No I/O.

The row holds the records themselves (`PairStat`, `Stationarity`), encoded as in a stream
entry, so their fields are stated once, in `shared/schemas.py` and `shared/pairstats.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shared.pairstats import STATIONARITY_FIELDS, Stationarity
from shared.schemas import PairStat, SchemaError


@dataclass(frozen=True, slots=True)
class ScreenRow:
    """A pair's values in the screener: its newest statistics (`stat`) and the newest
    stationarity values computed (`carried`, on bar `adf_ts`; None when not known), which the
    bars between two runs of the tests carry."""

    a: str
    b: str
    stat: PairStat
    carried: Stationarity
    adf_ts: int | None = None

    @property
    def pair(self) -> str:
        return f"{self.a}-{self.b}"

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "a": self.a,
                "b": self.b,
                "stat": self.stat.to_fields(),
                "carried": self.carried.fields(),
                "adf_ts": self.adf_ts,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> ScreenRow:
        """A row as published; `SchemaError` says what is wrong."""
        try:
            values = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SchemaError(f"a screener row is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise SchemaError("a screener row is not a JSON object")
        a, b, adf_ts = values.get("a"), values.get("b"), values.get("adf_ts")
        if not isinstance(a, str) or not isinstance(b, str):
            raise SchemaError("a screener row names no pair (a, b)")
        if adf_ts is not None and (not isinstance(adf_ts, int) or isinstance(adf_ts, bool)):
            raise SchemaError(f"adf_ts of a screener row is not a bar time: {adf_ts!r}")
        stat = PairStat.from_fields(_text_fields(values.get("stat"), "stat"))
        carried = _text_fields(values.get("carried"), "carried")
        unknown = sorted(set(carried) - set(STATIONARITY_FIELDS))
        if unknown:
            raise SchemaError(f"carried of a screener row has unknown fields {unknown}")
        try:
            stationarity = Stationarity(**{k: float(v) for k, v in carried.items()})
        except ValueError:
            raise SchemaError(f"carried of a screener row is not numbers: {carried}") from None
        return cls(a, b, stat, stationarity, adf_ts)


def _text_fields(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SchemaError(f"{name} of a screener row is not a map of text fields")
    return value
