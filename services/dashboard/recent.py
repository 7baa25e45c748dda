"""The newest parsed entries of the chart streams, kept between full renders.

A full render of the live view reads the newest 10,000 entries of three streams: reading and
parsing them costs about 0.25 s (0.7 s with a record per entry), against 10 ms for the figure.
The streams only grow at their new end, so `RecentEntries` keeps what it parsed, as columns
(`Held`), and asks Redis only for what came after it. A background thread keeps the served
views read (`prefetch.py`), so opening one costs a repeated render.

It trusts what it holds only while its oldest and newest entries still exist under the same
ids: a stream that was deleted, reset or rewritten (the analytics rebuild) is read again in
full. Entries that do not match their schema are held as gaps, so they count towards `limit`
exactly as in Redis and are reported as skipped. The cache is bounded (least recently used
streams are dropped) and safe to share between the server's threads: every held value is
replaced, never changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np
import redis

from services.dashboard.data import stream_keys
from services.dashboard.records import ROLES, START, Keyed, Snapshot
from shared.redis_io import decoded
from shared.schemas import Alert, Bar, PairStat, Record, SchemaError
from shared.table import Table
from shared.views import PairView

RECORDS: dict[str, type[Bar] | type[PairStat] | type[Alert]] = {
    "a": Bar,
    "b": Bar,
    "stats": PairStat,
    "alerts": Alert,
}
"""The record of each chart stream's entries."""


def _matches(record: type[Record], fields: Any) -> bool:
    try:
        record.table_of_fields([decoded(fields)])
    except (SchemaError, TypeError, AttributeError):
        return False
    return True


@dataclass(frozen=True)
class Held:
    """The newest `limit` entries of one stream as last read, oldest first: every entry's id,
    whether it matched its schema, and the records of those that did, as columns (a record per
    entry costs about seven times as much to parse, and the figure reads columns)."""

    ids: tuple[str, ...]
    matched: np.ndarray
    records: Table[Any]

    @classmethod
    def of_entries(cls, role: str, entries: Sequence[Any]) -> Held:
        """Stream entries (oldest first) parsed by their role's schema, all at once; only when
        some do not match is each tried on its own."""
        record = RECORDS[role]
        ids = tuple(str(entry_id) for entry_id, _ in entries)
        try:
            records: Table[Any] = record.table_of_fields([decoded(f) for _, f in entries])
            matched = np.ones(len(ids), dtype=bool)
        except (SchemaError, TypeError, AttributeError):
            matched = np.array([_matches(record, f) for _, f in entries], dtype=bool)
            good = [decoded(f) for (_, f), ok in zip(entries, matched, strict=True) if ok]
            records = record.table_of_fields(good)
        return cls(ids, matched, records)

    @property
    def head(self) -> str:
        return self.ids[0]

    @property
    def tail(self) -> str:
        return self.ids[-1]

    @property
    def skipped(self) -> int:
        return len(self.ids) - len(self.records)

    def keyed(self) -> Keyed[Any]:
        """The entries that matched, with their ids."""
        ids = tuple(compress(self.ids, self.matched.tolist()))
        return Keyed(ids, self.records)

    def extended(self, new: Held, limit: int) -> Held:
        """`new` after these entries, the newest `limit` of them kept."""
        ids = self.ids + new.ids
        matched = np.concatenate((self.matched, new.matched))
        records = self.records.joined(new.records)
        drop = len(ids) - limit
        if drop > 0:
            records = records[int(np.count_nonzero(matched[:drop])) :]
            ids, matched = ids[drop:], matched[drop:]
        return Held(ids, matched, records)


@dataclass(frozen=True)
class Request:
    """One stream to read: its key and how many of its newest entries."""

    role: str
    key: str
    limit: int


class RecentEntries:
    def __init__(self, max_streams: int = 48) -> None:
        self._held: OrderedDict[tuple[str, int], Held] = OrderedDict()
        self._lock = threading.Lock()
        self._max_streams = max_streams

    def __len__(self) -> int:
        return len(self._held)

    @property
    def max_streams(self) -> int:
        return self._max_streams

    def read(
        self,
        client: redis.Redis,
        view: PairView,
        default_window: int,
        limit: int,
        alert_scan: int = 1_000,
    ) -> Snapshot:
        """What `data.read_recent` returns, reading only the entries added since the last call
        for the same streams."""
        streams = stream_keys(view, default_window)
        requests = [
            Request(role, streams[role], alert_scan if role == "alerts" else limit)
            for role in ROLES
        ]
        held = [self._get((r.key, r.limit)) for r in requests]
        fresh = self._continued(client, requests, held, view.latest_key(default_window))
        latest = fresh.pop()
        missing = [r for r, h in zip(requests, fresh, strict=True) if h is None]
        if missing:
            pipe = client.pipeline(transaction=False)
            for r in missing:
                pipe.xrevrange(r.key, count=r.limit)
            for r, reply in zip(missing, pipe.execute(), strict=True):
                fresh[requests.index(r)] = Held.of_entries(r.role, list(reversed(reply or [])))
        for r, h in zip(requests, fresh, strict=True):
            assert h is not None
            self._put((r.key, r.limit), h)
        return _snapshot(dict(zip(ROLES, fresh, strict=True)), latest)

    def _continued(
        self,
        client: redis.Redis,
        requests: list[Request],
        held: list[Held | None],
        latest_key: str,
    ) -> list[Any]:
        """One round trip: for each stream held, whether its oldest and newest entries are
        still there, and what came after them; then the latest-statistics hash. A stream that
        cannot be continued comes back as None."""
        pipe = client.pipeline(transaction=False)
        for r, h in zip(requests, held, strict=True):
            if h is None or not h.ids:
                pipe.echo("")
                continue
            pipe.xrange(r.key, min=h.head, max=h.head)
            pipe.xrange(r.key, min=h.tail, max=h.tail)
            pipe.xrange(r.key, min=f"({h.tail}", count=r.limit)
        pipe.hgetall(latest_key)
        replies = pipe.execute()
        out: list[Any] = []
        at = 0
        for r, h in zip(requests, held, strict=True):
            if h is None or not h.ids:
                out.append(None)
                at += 1
                continue
            head, tail, new = replies[at : at + 3]
            at += 3
            same = bool(head) and bool(tail) and str(head[0][0]) == h.head
            if not same or len(new) >= r.limit:
                out.append(None)
            else:
                out.append(h.extended(Held.of_entries(r.role, new), r.limit))
        out.append(decoded(replies[at] or {}))
        return out

    def _get(self, key: tuple[str, int]) -> Held | None:
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                self._held.move_to_end(key)
            return held

    def _put(self, key: tuple[str, int], held: Held) -> None:
        with self._lock:
            self._held[key] = held
            self._held.move_to_end(key)
            while len(self._held) > self._max_streams:
                self._held.popitem(last=False)


def _snapshot(held: dict[str, Held | None], latest: dict[str, str]) -> Snapshot:
    rows = {role: h.keyed() if h else [] for role, h in held.items()}
    snap = Snapshot(
        bars_a=rows["a"],
        bars_b=rows["b"],
        stats=rows["stats"],
        alerts=rows["alerts"],
        latest=latest,
        skipped=sum(h.skipped for h in held.values() if h),
    )
    snap.tails = snap.newest_ids({role: START for role in ROLES})
    return snap
