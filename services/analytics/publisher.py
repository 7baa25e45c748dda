"""Writing the worker's output to Redis: bars, pair statistics, latest hashes, alerts.

Commands are collected in an `Outbox` and sent as one pipeline. When Redis is away the batch is
kept and sent again once it answers (bounded: the oldest batches are dropped beyond
`MAX_PENDING_COMMANDS`, and the drop is reported), so a short outage loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from services.analytics.pairs import STATIONARITY_FIELDS, ViewState
from shared import keys
from shared.config import Settings
from shared.redis_io import Redis
from shared.schemas import Alert, Bar, PairStat, StreamFields

log = logging.getLogger(__name__)

MAX_PENDING_COMMANDS = 1_000_000
Command = tuple[str, tuple[Any, ...], dict[str, Any]]


class Outbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.commands: list[Command] = []
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.commands)

    def _add(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.commands.append((name, args, kwargs))

    def bar(self, tf: str, symbol: str, bar: Bar) -> None:
        self._add(
            "xadd", keys.bars(tf, symbol), bar.to_fields(),
            maxlen=self.settings.maxlen_bars, approximate=True,
        )  # fmt: skip

    def entry(self, state: ViewState, fields: StreamFields) -> None:
        self._add(
            "xadd", state.stream_key, fields, maxlen=self.settings.maxlen_analytics,
            approximate=True,
        )  # fmt: skip

    def latest(self, state: ViewState, fields: StreamFields) -> None:
        """Replace the view's latest hash with one entry (no moment with an empty hash)."""
        self._add("hset", state.latest_key, mapping=fields)
        absent = [name for name in STATIONARITY_FIELDS if name not in fields]
        if absent and state.latest_extra:
            self._add("hdel", state.latest_key, *absent)
        state.latest_extra = len(absent) < len(STATIONARITY_FIELDS)

    def publish(self, state: ViewState, stat: PairStat, *, latest: bool = True) -> None:
        fields = stat.to_fields()
        self.entry(state, fields)
        if latest:
            self.latest(state, fields)

    def alert(self, alert: Alert) -> None:
        fields = alert.to_fields()
        self._add("xadd", keys.ALERTS, fields, maxlen=self.settings.maxlen_alerts, approximate=True)
        self._add("publish", keys.ALERTS, orjson.dumps(fields).decode())

    def delete(self, *names: str) -> None:
        self._add("delete", *names)

    def raw(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._add(name, *args, **kwargs)

    async def flush(self, redis: Redis) -> None:
        """Send everything collected as one pipeline; on failure keep it and raise."""
        if not self.commands:
            return
        pipe = redis.pipeline(transaction=False)
        for name, args, kwargs in self.commands:
            getattr(pipe, name)(*args, **kwargs)
        await pipe.execute()
        self.commands.clear()

    def trim(self) -> int:
        """Drop the oldest commands beyond the bound while Redis is away; how many went."""
        excess = len(self.commands) - MAX_PENDING_COMMANDS
        if excess <= 0:
            return 0
        del self.commands[:excess]
        self.dropped += excess
        return excess
