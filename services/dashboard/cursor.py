"""The chart cursor: what the browser holds of a view's streams, kept in its `cursor` store.

A full render sends the newest entries, each trace reduced to the points a screen shows, and a
cursor: the view's key, the full render it descends from (`render`), the newest id of each
stream (`ids`), how many entries of each role the page covers (`n`), the most points any of its
traces holds (`points`), the stationarity values shown (`adf`) and a digest of the
latest-statistics hash (`latest`). A live step reads only the entries after `ids` and appends
them; it renders in full instead when the cursor cannot be continued, which also reduces the
page again once its traces are full. No state lives in the server (pure).

The cursor says what the page has drawn, not what the server sent: the full render's figure
carries its cursor (`layout.meta.cursor`), a step carries the cursor it continues (`base`) and
the one it leads to, and only the page moves its cursor store on, once it has appended a step
to the figure that step continues (`clientside.EXTEND_JS`). A step that reaches the page
before the figure it follows is drawn, after another one, after Pause, or twice, is not drawn,
and the next step starts again from what is on screen.
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


def reduced_to(screen_points: int) -> int:
    """Points a full render draws per trace: a tenth of the screen's points is left for the
    live steps that follow it."""
    return screen_points - headroom(screen_points)


def headroom(screen_points: int) -> int:
    return screen_points // 10


@dataclass(frozen=True)
class ChartCursor:
    key: str
    ids: dict[str, str]
    n: dict[str, int]
    adf: dict[str, float] | None
    latest: str | None
    points: int = 0
    render: str = ""
    """The full render this cursor descends from (a token the shell draws for each one)."""

    def to_store(self) -> dict[str, Any]:
        return {"key": self.key, "render": self.render, "ids": self.ids, "n": self.n,
                "adf": self.adf, "latest": self.latest, "points": self.points}  # fmt: skip

    @classmethod
    def of_view(cls, stored: dict[str, Any] | None, key: str) -> ChartCursor | None:
        """The browser's cursor when it belongs to the view `key`; None means render in full."""
        if not stored or stored.get("key") != key:
            return None
        return cls(
            key, stored["ids"], stored["n"], stored.get("adf"), stored.get("latest"),
            int(stored.get("points", 0)), str(stored.get("render", "")),
        )  # fmt: skip


def continues(cursor: ChartCursor, new: Snapshot, screen_points: int, max_points: int) -> bool:
    """Whether `new` (read after `cursor.ids`) can be appended to the screen: not when a stream
    was reset (its newest id is older than the one seen), a row gets its first data (to clear
    its empty-state message), too much is new, or the page would hold more than
    `screen_points` points in a trace or cover more than `max_points` entries (and a tenth of
    the screen) of a stream."""
    rows = new.by_role()
    reset = any(id_parts(new.tails[role]) < id_parts(cursor.ids.get(role, START)) for role in ROLES)
    first_data = any(cursor.n.get(role, 0) == 0 and rows[role] for role in ("a", "b", "stats"))
    flood = any(len(entries) >= LIVE_BATCH for entries in rows.values())
    added = max((len(entries) for entries in rows.values()), default=0)
    full = cursor.points + added > screen_points or any(
        cursor.n.get(role, 0) + len(rows[role]) > max_points + headroom(screen_points)
        for role in ROLES[:3]
    )
    return not (reset or first_data or flood or full)
