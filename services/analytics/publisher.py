"""Writing the worker's output to Redis: bars, pair statistics, latest hashes, alerts.

Commands are collected in an `Outbox` as Redis protocol bytes and sent as one pipeline on one
connection. Encoding them here rather than through redis-py's command packing is what keeps a
bar of 190 pairs (two commands of ~36 arguments each) within a few milliseconds: an entry's
fields are encoded once for both its XADD and its HSET. Within a batch the latest hashes come
first, so they are up to date before the stream entries are appended.

When Redis is away the batch is kept and sent again once it answers (bounded by
`MAX_PENDING_COMMANDS`; the oldest are dropped and counted beyond that), so a short outage
loses nothing. A bar or statistics entry may then be appended twice if the connection broke
mid-batch; an alert never is: it goes out through `SEND_ALERT`, which adds it (and publishes it)
only if the alert's `keys.alert_sent` marker was not there yet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields

import orjson
from redis.exceptions import ResponseError

from services.analytics.pairs import ViewState
from services.analytics.resp import Arg, arg, bulk, command, round_trip
from shared import keys
from shared.config import Settings
from shared.pairstats import STATIONARITY_FIELDS
from shared.redis_io import Redis
from shared.schemas import Alert, Bar, PairStat

log = logging.getLogger(__name__)

MAX_PENDING_COMMANDS = 1_000_000
SEND_ALERT = b"""
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
  redis.call('PUBLISH', KEYS[1], ARGV[3])
  return 1
end
return 0
"""
"""KEYS: the alerts stream, the alert's sent marker. ARGV: marker TTL, MAXLEN, the JSON to
publish, then the entry's field/value pairs."""


_STAT_NAMES = tuple((field.name, bulk(field.name.encode())) for field in fields(PairStat))
_XADD, _HSET, _HDEL, _STAR, _MAXLEN, _TILDE = (
    bulk(b"XADD"), bulk(b"HSET"), bulk(b"HDEL"), bulk(b"*"), bulk(b"MAXLEN"), bulk(b"~"),
)  # fmt: skip


def encode_fields(record: PairStat) -> tuple[bytes, int, bool]:
    """A PairStat's field/value pairs as RESP bulks, as `PairStat.to_fields()` writes them:
    (bytes, number of fields, whether a stationarity field is among them)."""
    chunks = []
    for name, encoded in _STAT_NAMES:
        value = getattr(record, name)
        if value is not None:
            chunks.append(encoded + bulk(arg(value)))
    extra = any(getattr(record, name) is not None for name in STATIONARITY_FIELDS)
    return b"".join(chunks), len(chunks), extra


class Outbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.first: list[bytes] = []
        """Commands sent at the head of the next batch (latest hashes)."""
        self.commands: list[bytes] = []
        self.dropped = 0
        self.errors = 0
        self._maxlen = {
            "bars": bulk(b"%d" % settings.maxlen_bars),
            "analytics": bulk(b"%d" % settings.maxlen_analytics),
        }
        self._bar_keys: dict[tuple[str, str], bytes] = {}

    def __len__(self) -> int:
        return len(self.first) + len(self.commands)

    def _xadd(self, key: bytes, maxlen: bytes, blob: bytes, count: int) -> bytes:
        return b"*%d\r\n" % (6 + 2 * count) + _XADD + key + _MAXLEN + _TILDE + maxlen + _STAR + blob

    def bar(self, tf: str, symbol: str, bar: Bar) -> None:
        key = self._bar_keys.get((tf, symbol))
        if key is None:
            key = self._bar_keys[(tf, symbol)] = bulk(keys.bars(tf, symbol).encode())
        values = bar.to_fields()
        blob = b"".join(bulk(str(k).encode()) + bulk(str(v).encode()) for k, v in values.items())
        self.commands.append(self._xadd(key, self._maxlen["bars"], blob, len(values)))

    def publish(self, state: ViewState, stat: PairStat, *, latest: bool = True) -> None:
        """Append the entry to the view's stream and (by default) make it its latest hash."""
        blob, count, extra = encode_fields(stat)
        self.commands.append(
            self._xadd(state.stream_key_bytes, self._maxlen["analytics"], blob, count)
        )
        if latest:
            self._latest(state, blob, count, extra)

    def latest(self, state: ViewState, stat: PairStat) -> None:
        """Replace the view's latest hash with one entry (no moment with an empty hash)."""
        blob, count, extra = encode_fields(stat)
        self._latest(state, blob, count, extra)

    def _latest(self, state: ViewState, blob: bytes, count: int, extra: bool) -> None:
        key = state.latest_key_bytes
        self.first.append(b"*%d\r\n" % (2 + 2 * count) + _HSET + key + blob)
        if state.latest_extra and not extra:
            names = [bulk(name.encode()) for name in STATIONARITY_FIELDS]
            self.first.append(b"*%d\r\n" % (2 + len(names)) + _HDEL + key + b"".join(names))
        state.latest_extra = extra

    def alert(self, alert: Alert) -> None:
        values = alert.to_fields()
        flat: list[Arg] = [str(x) for pair in values.items() for x in pair]
        marker = keys.alert_sent(alert.rule, alert.tf, alert.ts)
        self.commands.append(
            command(
                "EVAL",
                SEND_ALERT,
                2,
                keys.ALERTS,
                marker,
                keys.ALERT_SENT_TTL_MS,
                self.settings.maxlen_alerts,
                orjson.dumps(values),
                *flat,
            )
        )

    def hset(self, key: str, values: Mapping[str, str]) -> None:
        flat: list[Arg] = [str(x) for pair in values.items() for x in pair]
        self.commands.append(command("HSET", key, *flat))

    def delete(self, *names: str) -> None:
        self.commands.append(command("DEL", *names))

    async def flush(self, redis: Redis) -> None:
        """Send everything collected as one pipeline; on a connection failure keep it and raise.

        A command Redis refuses (say a key of the wrong type, written by hand) is logged and
        counted; the others go through.
        """
        if not self.first and not self.commands:
            return
        first, commands = self.first, self.commands
        self.first, self.commands = [], []
        try:
            await round_trip(
                redis, b"".join(first + commands), len(first) + len(commands), self._refused
            )
        except BaseException:
            self.first, self.commands = first + self.first, commands + self.commands
            raise

    def _refused(self, error: ResponseError) -> None:
        self.errors += 1
        log.warning("redis refused a command", extra={"error": str(error)})

    def trim(self) -> int:
        """Drop the oldest commands beyond the bound while Redis is away; how many went."""
        excess = len(self) - MAX_PENDING_COMMANDS
        if excess <= 0:
            return 0
        del self.commands[: min(excess, len(self.commands))]
        self.dropped += excess
        return excess
