"""The view the controls chose, as the browser keeps it in its `view` store (pure)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from services.dashboard.figures import Theme
from shared.views import METHODS, Method, PairView

Mode = Literal["live", "history", "upload"]
MODES: tuple[Mode, ...] = ("live", "history", "upload")
MIN_K, MAX_K = 0.1, 20.0


@dataclass(frozen=True)
class Selection:
    """Everything the controls decide, as kept in the browser's `view` store."""

    mode: Mode
    a: str
    b: str
    tf: str
    window: int
    method: Method
    k: float
    theme: Theme = "dark"
    start_ms: int | None = None
    end_ms: int | None = None
    upload: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not (MIN_K <= self.k <= MAX_K) or not math.isfinite(self.k):
            raise ValueError(f"the z-score threshold must be between {MIN_K} and {MAX_K}")
        if self.mode == "history" and (
            self.start_ms is None or self.end_ms is None or self.start_ms >= self.end_ms
        ):
            raise ValueError("a history range needs a start before its end")
        if self.mode == "upload" and not self.upload:
            raise ValueError("upload a CSV file first")
        self.pair_view()

    def pair_view(self) -> PairView:
        return PairView(self.a, self.b, self.tf, self.window, self.method)

    @property
    def key(self) -> str:
        """Identifies what is drawn; also the figure's `uirevision` (a new key resets zoom)."""
        parts = [self.mode, self.pair_view().id, f"k{self.k:g}", self.theme]
        if self.mode == "history":
            parts += [str(self.start_ms), str(self.end_ms)]
        if self.mode == "upload":
            parts.append(self.upload)
        return "|".join(parts)

    def to_store(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_store(cls, stored: Any) -> Selection:
        if not isinstance(stored, dict):
            raise ValueError("no view chosen yet")
        method = stored.get("method")
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
        return cls(
            mode=stored.get("mode", "live"),
            a=str(stored.get("a", "")),
            b=str(stored.get("b", "")),
            tf=str(stored.get("tf", "")),
            window=int(stored.get("window", 0)),
            method=cast(Method, method),
            k=float(stored.get("k", 2.0)),
            theme="light" if stored.get("theme") == "light" else "dark",
            start_ms=stored.get("start_ms"),
            end_ms=stored.get("end_ms"),
            upload=str(stored.get("upload") or ""),
        )
