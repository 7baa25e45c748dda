"""Reading a figure as the browser gets it: typed arrays (`{"dtype", "bdata"}`) decoded here
with numpy, independently of the code that encodes them."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

DTYPES = {"f8": np.float64, "f4": np.float32, "i4": np.int32, "i2": np.int16, "i1": np.int8,
          "u4": np.uint32, "u2": np.uint16, "u1": np.uint8}  # fmt: skip


def values(spec: Any) -> np.ndarray:
    """A trace array: a typed-array dict or a plain list, as float64."""
    if isinstance(spec, dict):
        return np.frombuffer(base64.b64decode(spec["bdata"]), DTYPES[spec["dtype"]]).astype(float)
    return np.asarray(spec if spec is not None else [], dtype=float)


@dataclass(frozen=True)
class Drawn:
    name: str
    x: np.ndarray
    y: np.ndarray
    text: list[str] | None
    raw: dict[str, Any]


def drawn(figure: dict[str, Any]) -> list[Drawn]:
    return [
        Drawn(t["name"], values(t.get("x")), values(t.get("y")), t.get("text"), t)
        for t in figure["data"]
    ]


def by_name(figure: dict[str, Any]) -> dict[str, Drawn]:
    return {trace.name: trace for trace in drawn(figure)}
