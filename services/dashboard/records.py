"""What the dashboard's reads return (`data.py`), as plain records with no I/O, so the pure
modules (panels, screen, cursor, controller) can take them without importing a reader."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, overload

from services.dashboard import export
from services.dashboard.figures import ChartData
from shared import keys
from shared.alert_rules import AlertRule
from shared.schemas import Alert, Bar, Event, PairStat, SchemaError
from shared.table import Table
from shared.views import PairView

R = TypeVar("R")

ROLES = ("a", "b", "stats", "alerts")
"""The four streams behind the charts: bars of leg A, bars of leg B, the view's statistics,
and the fired alerts."""
START = "0-0"


# Health ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceHealth:
    """One service's health record as the dashboard shows it."""

    service: str
    status: str
    age_ms: int | None
    counters: dict[str, str]
    stale_after_ms: int

    @property
    def stale(self) -> bool:
        if self.status == "stopped":
            return False
        return self.age_ms is None or self.age_ms > self.stale_after_ms


@dataclass(frozen=True)
class FeedHealth:
    """One symbol's tick stream: how many ticks were ever added, the newest one, the writer's lag,
    and the latest connection event for it."""

    symbol: str
    added: int | None
    last_tick_ms: int | None
    writer_lag: int | None
    state: str
    state_detail: str
    state_ms: int | None


@dataclass(frozen=True)
class PipelineHealth:
    redis_ok: bool
    redis_error: str
    services: tuple[ServiceHealth, ...]
    feeds: tuple[FeedHealth, ...] = ()
    events: tuple[Event, ...] = ()
    at_ms: int = 0


# Streams behind the charts ------------------------------------------------------------------


class Keyed(Sequence[tuple[str, R]], Generic[R]):
    """Stream entries as (id, record) pairs, held as their ids and a table of their records
    (the render cache, `recent.py`): a full render reads the columns, with no record built per
    entry."""

    __slots__ = ("ids", "records")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, ids: Sequence[str], records: Table[R]) -> None:
        if len(ids) != len(records):
            raise ValueError(f"{len(ids)} ids for {len(records)} records")
        self.ids, self.records = ids, records

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> tuple[str, R]: ...

    @overload
    def __getitem__(self, index: slice) -> Keyed[R]: ...

    def __getitem__(self, index: int | slice) -> tuple[str, R] | Keyed[R]:
        if isinstance(index, slice):
            return Keyed(self.ids[index], self.records[index])
        return self.ids[index], self.records[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return repr(list(self))


def records_of(rows: Sequence[tuple[str, R]]) -> Sequence[R]:
    """The records of stream entries: a `Keyed`'s table as it is, else a list."""
    return rows.records if isinstance(rows, Keyed) else [record for _, record in rows]


@dataclass
class Snapshot:
    """Entries of the four chart streams, oldest first, with their ids; `tails` is each stream's
    newest id (to notice a stream that was reset), `latest` the view's latest-statistics hash."""

    bars_a: Sequence[tuple[str, Bar]] = field(default_factory=list)
    bars_b: Sequence[tuple[str, Bar]] = field(default_factory=list)
    stats: Sequence[tuple[str, PairStat]] = field(default_factory=list)
    alerts: Sequence[tuple[str, Alert]] = field(default_factory=list)
    latest: dict[str, str] = field(default_factory=dict)
    tails: dict[str, str] = field(default_factory=dict)
    skipped: int = 0

    def by_role(self) -> dict[str, Sequence[tuple[str, object]]]:
        return {"a": self.bars_a, "b": self.bars_b, "stats": self.stats, "alerts": self.alerts}

    def newest_ids(self, previous: dict[str, str]) -> dict[str, str]:
        ids = dict(previous)
        for role, rows in self.by_role().items():
            if rows:
                ids[role] = rows[-1][0]
        return ids


def alert_matches(alert: Alert, view: PairView) -> bool:
    return alert.pair == keys.pair_name(view.a, view.b) and alert.tf == view.tf


def latest_stat(latest: dict[str, str]) -> PairStat | None:
    try:
        return PairStat.from_fields(latest) if latest else None
    except (SchemaError, ValueError, TypeError, KeyError):
        return None


# Alert rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRow:
    """One entry of `alert-rules`: the parsed rule, or why the stored JSON is not a valid rule."""

    rule_id: str
    raw: str
    rule: AlertRule | None
    error: str = ""


# History ranges and uploads -------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A static data set (history range or upload): every row, and a note for the status."""

    chart: ChartData
    note: str = ""
    error: str = ""
    bar_columns: tuple[str, ...] = tuple(export.BAR_COLUMNS)
