"""A pair view: which pair, timeframe, window and hedge method a user is looking at.

The worker always serves the default views (every pair of `PAIRS` at every timeframe, window
`WINDOW`, OLS). A user who picks other parameters adds a view id to `keys.ANALYTICS_VIEWS` with an
expiry and renews it while looking; the worker serves it into its own keys until it expires.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared import keys
from shared.config import normalize_symbol, timeframe_ms

Method = Literal["ols", "kalman", "huber"]
METHODS: tuple[Method, ...] = ("ols", "kalman", "huber")
DEFAULT_METHOD: Method = "ols"
VIEW_TTL_MS = 30_000
"""How long a view stays served after its last renewal."""
MIN_WINDOW, MAX_WINDOW = 3, 100_000

_ID = re.compile(r"^([A-Z0-9]+)-([A-Z0-9]+):([0-9]+[smhd]):w([0-9]+):([a-z]+)\Z")


@dataclass(frozen=True, slots=True)
class PairView:
    a: str
    b: str
    tf: str
    window: int
    method: Method = DEFAULT_METHOD

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", normalize_symbol(self.a))
        object.__setattr__(self, "b", normalize_symbol(self.b))
        timeframe_ms(self.tf)
        if self.a == self.b:
            raise ValueError(f"a pair needs two different symbols, got {self.a} twice")
        if not MIN_WINDOW <= self.window <= MAX_WINDOW:
            raise ValueError(f"window {self.window} is outside {MIN_WINDOW}..{MAX_WINDOW}")
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(METHODS)}")

    @property
    def id(self) -> str:
        """`BTCUSDT-ETHUSDT:1m:w120:kalman`: the member of `keys.ANALYTICS_VIEWS`."""
        return f"{keys.pair_name(self.a, self.b)}:{self.tf}:w{self.window}:{self.method}"

    @classmethod
    def parse(cls, view_id: str) -> PairView:
        """The view of an id; `ValueError` saying what is wrong with a malformed one."""
        match = _ID.match(view_id)
        if not match:
            raise ValueError(f"{view_id!r} is not a view id like BTCUSDT-ETHUSDT:1m:w60:ols")
        a, b, tf, window, method = match.groups()
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
        return cls(a, b, tf, int(window), method)

    def is_default(self, default_window: int) -> bool:
        return self.window == default_window and self.method == DEFAULT_METHOD

    def variant(self, default_window: int) -> str:
        """The key variant: empty for the default series, `w<window>:<method>` otherwise."""
        return "" if self.is_default(default_window) else f"w{self.window}:{self.method}"

    def stream_key(self, default_window: int) -> str:
        return keys.analytics(self.a, self.b, self.tf, self.variant(default_window))

    def latest_key(self, default_window: int) -> str:
        return keys.analytics_latest(self.a, self.b, self.tf, self.variant(default_window))

    def screener_key(self, default_window: int) -> str:
        """The screener hash of the view's series (every pair with its timeframe, window and
        method)."""
        return keys.screener(self.tf, self.variant(default_window))

    def forming_key(self, default_window: int) -> str:
        return keys.analytics_forming(self.a, self.b, self.tf, self.variant(default_window))


def default_views(
    pairs: Sequence[tuple[str, str]], timeframes: Sequence[str], window: int
) -> list[PairView]:
    """Every pair at every timeframe, window `WINDOW`, OLS: always served."""
    return [PairView(a, b, tf, window, DEFAULT_METHOD) for tf in timeframes for a, b in pairs]
