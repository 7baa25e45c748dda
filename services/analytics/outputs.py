"""What the analytics engine takes in and gives out, as values: the engine's contract with the
shell (`service.py`, `fill.py`, `rebuild.py`) and the Redis adapter (`redis_wire.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.schemas import Alert, Bar, Forming, PairStat
from shared.views import PairView


@dataclass(frozen=True, slots=True)
class Wanted:
    """The alert rules and requested views as stored now."""

    rules: Mapping[str, str]
    rule_count: int
    """How many rules the hash holds (more than read when ids that are not UTF-8 decode alike)."""
    views: Sequence[str]
    """The unexpired members of `analytics-views`."""


@dataclass(frozen=True, slots=True)
class BarOut:
    """A closed bar for `bars:<tf>:<symbol>`."""

    tf: str
    symbol: str
    bar: Bar


@dataclass(frozen=True, slots=True)
class StatOut:
    """A view's statistics entry: appended to its stream and/or made its latest hash."""

    stream_key: str
    latest_key: str
    stat: PairStat
    stream: bool = True
    latest: bool = True
    drop_extra: bool = False
    """Remove the stationarity fields from the latest hash (it may hold some, this lacks them)."""


@dataclass(frozen=True, slots=True)
class FormingOut:
    """A view's bar in progress, appended to its `:forming` stream (capped)."""

    key: str
    forming: Forming


@dataclass(frozen=True, slots=True)
class FieldsOut:
    """Fields set on a hash (the stationarity computed on request, on the view's latest)."""

    key: str
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    """`bad-rule`, `bad-view` or `bad-request`: the event kind, and `<kind>s` counts them."""
    text: str


@dataclass(frozen=True, slots=True)
class BadEntry:
    raw: str
    """The entry as kept in the dead-letter stream."""
    reason: str


@dataclass(frozen=True)
class Step:
    """What one call produced, in the order it is to be written."""

    bars: Sequence[BarOut] = ()
    stats: Sequence[StatOut] = ()
    fields: Sequence[FieldsOut] = ()
    alerts: Sequence[Alert] = ()
    forming: Sequence[FormingOut] = ()
    deletes: Sequence[str] = ()
    """Keys to delete at once (views no longer served)."""
    dropped: Sequence[str] = ()
    """Views no longer served (a fill of one of them is cancelled)."""
    fills: Sequence[str] = ()
    """Views to fill from history, in order."""
    problems: Sequence[Problem] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
    """Health counters to add to."""
    closed: int = 0
    """Intervals closed."""


@dataclass(frozen=True, slots=True)
class Ingested:
    step: Step
    held: int | None
    """The clock hold: the oldest last trade time of the streams read in full."""
    bad: Sequence[BadEntry]


@dataclass(frozen=True, slots=True)
class ViewProgress:
    """What a view's stream and latest hash already hold."""

    view_id: str
    published_until: int
    last: PairStat | None


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """Older closes wanted for one leg of a view being filled: `symbol`'s bars in
    [`first`, `oldest`) at `tf`."""

    symbol: int
    name: str
    tf: str
    first: int
    oldest: int


@dataclass(frozen=True, slots=True)
class FillJob:
    """A view's series as held when its fill starts, and where its output goes."""

    view_id: str
    view: PairView
    stream_key: str
    latest_key: str
    phase: int
    tf_ms: int
    adf_every: int
    kalman_delta: float
    ts: np.ndarray
    a: np.ndarray
    b: np.ndarray
    first: int
    """The first row to compute (the last `VIEW_FILL_BARS`, with enough bars before them)."""


@dataclass(frozen=True, slots=True)
class FillDone:
    step: Step
    entries: int
