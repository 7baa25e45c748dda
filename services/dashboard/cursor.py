"""The chart cursor: what the browser holds of a view's streams, kept in its `cursor` store.

A full render sends every point and a cursor: the view's key, the newest id of each stream
(`ids`), how many points of each role are on screen (`n`), the stationarity values shown (`adf`)
and a digest of the latest-statistics hash (`latest`). A live step reads only the entries after
`ids` and patches the figure; it renders in full instead when the cursor cannot be continued.
No state lives in the server (pure).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from services.dashboard.records import ROLES, START, Snapshot
from shared.streamids import id_parts

LIVE_BATCH = 500
"""More new entries than this in one step (after a pause, say) and the step renders in full."""


def latest_digest(latest: dict[str, str]) -> str:
    return f"{zlib.crc32(orjson.dumps(latest, option=orjson.OPT_SORT_KEYS)):08x}"


@dataclass(frozen=True)
class ChartCursor:
    key: str
    ids: dict[str, str]
    n: dict[str, int]
    adf: dict[str, float] | None
    latest: str | None

    def to_store(self) -> dict[str, Any]:
        return {"key": self.key, "ids": self.ids, "n": self.n, "adf": self.adf,
                "latest": self.latest}  # fmt: skip

    @classmethod
    def of_view(cls, stored: dict[str, Any] | None, key: str) -> ChartCursor | None:
        """The browser's cursor when it belongs to the view `key`; None means render in full."""
        if not stored or stored.get("key") != key:
            return None
        return cls(key, stored["ids"], stored["n"], stored.get("adf"), stored.get("latest"))


def continues(cursor: ChartCursor, new: Snapshot) -> bool:
    """Whether `new` (read after `cursor.ids`) can be patched onto the screen: not when a stream
    was reset (its newest id is older than the one seen), a row gets its first data (to clear
    its empty-state message), or too much is new."""
    rows = new.by_role()
    reset = any(id_parts(new.tails[role]) < id_parts(cursor.ids.get(role, START)) for role in ROLES)
    first_data = any(cursor.n.get(role, 0) == 0 and rows[role] for role in ("a", "b", "stats"))
    flood = any(len(entries) >= LIVE_BATCH for entries in rows.values())
    return not (reset or first_data or flood)
