"""The worker's Redis adapter: the protocol (RESP) encoding, the raw tick reads and the output
batches. It holds no domain state: it encodes what the engine returns (`engine.Step`).

redis-py packs every argument of every command in Python with type checks; for the tick reads
(one XREADGROUP of ~45 arguments, hundreds of times a second) and the per-bar output (hundreds
of commands of ~36 arguments) that is most of the worker's time. Here the commands are encoded
once (or straight from the records) and sent on a connection taken from the client's pool, so
authentication, TLS and database selection stay redis-py's. The redis-py reply callback for
XREADGROUP turns every entry into a dict; at 50,000 ticks/s that is most of a core, so the
reader's own connection keeps hiredis' nested lists instead.

Output commands are collected in an `Outbox` and sent as one pipeline on one connection: an
entry's fields are encoded once for both its XADD and its HSET, which keeps a bar of 190 pairs
(two commands of ~36 arguments each) within a few milliseconds. Within a batch the latest hashes
come first, so they are up to date before the stream entries are appended.

When Redis is away the batch is kept and sent again once it answers (bounded by
`MAX_PENDING_COMMANDS`; the oldest are dropped and counted beyond that), so a short outage
loses nothing. A bar or statistics entry may then be appended twice if the connection broke
mid-batch; an alert never is: it goes out through `SEND_ALERT`, which adds it (and publishes it)
only if the alert's `keys.alert_sent` marker was not there yet.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, cast

import orjson
from redis.exceptions import ResponseError

from services.analytics.outputs import BarOut, Step, Wanted
from services.analytics.ticks import RawEntry
from shared import keys
from shared.config import Settings
from shared.health import now_ms
from shared.pairstats import STATIONARITY_FIELDS
from shared.redis_io import RAW_REPLY, Redis, StreamEntry, client, ensure_group, text_hash
from shared.schemas import Alert, PairStat, SchemaError

log = logging.getLogger(__name__)

Arg = bytes | str | int | float


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def arg(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def command(*args: Arg) -> bytes:
    """One command in the Redis protocol."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg(a)) for a in args)


async def round_trip(
    redis: Redis, payload: bytes, replies: int, on_error: Callable[[ResponseError], None]
) -> list[Any]:
    """Send pre-encoded commands at once and read their `replies`.

    A reply that is an error goes to `on_error` (the other commands went through); a connection
    failure drops the connection and raises.
    """
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    results: list[Any] = []
    try:
        await connection.send_packed_command(payload, check_health=False)
        for _ in range(replies):
            try:
                results.append(await connection.read_response())
            except ResponseError as exc:
                on_error(exc)
                results.append(exc)
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    return results


class TickReader:
    """XREADGROUP ... NOACK of every stream, encoded once, replies left as hiredis gives them.

    NOACK: the worker does not need redelivery, it rebuilds its state from history at start and
    sets the group to where the rebuild ended (`rebuild.set_groups`); so nothing piles up in the
    group's pending list. A group that is gone (a Redis restarted without its data) is created
    again, reading from the start of its stream.
    """

    def __init__(
        self, url: str, group: str, consumer: str, streams: list[str], count: int, block_ms: int
    ) -> None:
        self.redis = client(url)
        self.count = count
        self.group, self.streams = group, streams
        self._command = command(
            "XREADGROUP", "GROUP", group, consumer, "COUNT", count, "BLOCK", block_ms, "NOACK",
            "STREAMS", *streams, *[">"] * len(streams),
        )  # fmt: skip

    async def read(self) -> Any:
        """The reply: None when nothing came within the block time, or the group was made."""

        def refused(error: ResponseError) -> None:
            raise error

        try:
            return (await round_trip(self.redis, self._command, 1, refused))[0]
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        log.warning("consumer group missing (redis restarted?), creating it")
        for stream in self.streams:
            await ensure_group(self.redis, stream, self.group, "0")
        return None

    async def aclose(self) -> None:
        await self.redis.aclose()


def raw_streams(reply: Any) -> list[tuple[str, list[RawEntry]]]:
    """[(stream, [(id, flat fields), ...]), ...] from a raw reply (RESP3 map or RESP2 list)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(str(stream), cast(list[RawEntry], entries)) for stream, entries in pairs]


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
XADD_BATCH = 1_000


_STAT_NAMES = tuple((field.name, bulk(field.name.encode())) for field in fields(PairStat))
_XADD, _HSET, _HDEL, _STAR, _MAXLEN, _TILDE = (
    bulk(b"XADD"), bulk(b"HSET"), bulk(b"HDEL"), bulk(b"*"), bulk(b"MAXLEN"), bulk(b"~"),
)  # fmt: skip
_EXTRA_NAMES = b"".join(bulk(name.encode()) for name in STATIONARITY_FIELDS)


def encode_fields(record: PairStat) -> tuple[bytes, int]:
    """A PairStat's field/value pairs as RESP bulks, as `PairStat.to_fields()` writes them:
    (bytes, number of fields)."""
    chunks = []
    for name, encoded in _STAT_NAMES:
        value = getattr(record, name)
        if value is not None:
            chunks.append(encoded + bulk(arg(value)))
    return b"".join(chunks), len(chunks)


class Outbox:
    """The commands of the steps written, until they are sent."""

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
        self._keys: dict[str, bytes] = {}
        """Key -> its bulk string, encoded once."""

    def __len__(self) -> int:
        return len(self.first) + len(self.commands)

    def _key(self, name: str) -> bytes:
        encoded = self._keys.get(name)
        if encoded is None:
            encoded = self._keys[name] = bulk(name.encode())
        return encoded

    def _xadd(self, key: bytes, maxlen: bytes, blob: bytes, count: int) -> bytes:
        return b"*%d\r\n" % (6 + 2 * count) + _XADD + key + _MAXLEN + _TILDE + maxlen + _STAR + blob

    def write(self, step: Step) -> None:
        """Encode a step's output: bars, statistics entries, hash fields, alerts, in order."""
        for out in step.bars:
            self.bar(out)
        analytics = self._maxlen["analytics"]
        for stat in step.stats:
            blob, count = encode_fields(stat.stat)
            if stat.stream:
                self.commands.append(self._xadd(self._key(stat.stream_key), analytics, blob, count))
            if stat.latest:
                key = self._key(stat.latest_key)
                self.first.append(b"*%d\r\n" % (2 + 2 * count) + _HSET + key + blob)
                if stat.drop_extra:
                    size = 2 + len(STATIONARITY_FIELDS)
                    self.first.append(b"*%d\r\n" % size + _HDEL + key + _EXTRA_NAMES)
        for hashed in step.fields:
            flat: list[Arg] = [str(x) for pair in hashed.fields.items() for x in pair]
            self.commands.append(command("HSET", hashed.key, *flat))
        for alert in step.alerts:
            self.alert(alert)
        for forming in step.forming:
            flat = [str(x) for pair in forming.forming.to_fields().items() for x in pair]
            self.commands.append(
                command("XADD", forming.key, "MAXLEN", "~", keys.FORMING_MAXLEN, "*", *flat)
            )

    def bar(self, out: BarOut) -> None:
        key = self._key(keys.bars(out.tf, out.symbol))
        values = out.bar.to_fields()
        blob = b"".join(bulk(str(k).encode()) + bulk(str(v).encode()) for k, v in values.items())
        self.commands.append(self._xadd(key, self._maxlen["bars"], blob, len(values)))

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


async def append_stats(redis: Redis, key: str, stats: Sequence[PairStat], maxlen: int) -> None:
    """XADD many entries to one stream, in pipelines of `XADD_BATCH` (a view's fill)."""
    for lo in range(0, len(stats), XADD_BATCH):
        pipe = redis.pipeline(transaction=False)
        for stat in stats[lo : lo + XADD_BATCH]:
            pipe.xadd(key, stat.to_fields(), maxlen=maxlen, approximate=True)
        await pipe.execute()


async def read_wanted(redis: Redis) -> Wanted:
    """The stored rules and the unexpired requested views (the expired ones are removed)."""
    now = now_ms()
    pipe = redis.pipeline(transaction=False)
    pipe.execute_command("HGETALL", keys.ALERT_RULES, **RAW_REPLY)
    pipe.hlen(keys.ALERT_RULES)
    pipe.zrangebyscore(keys.ANALYTICS_VIEWS, now, "+inf")
    pipe.zremrangebyscore(keys.ANALYTICS_VIEWS, "-inf", f"({now}")
    rules, count, members, _ = await pipe.execute()
    return Wanted(text_hash(rules), int(count), [str(m) for m in members])


async def revrange(redis: Redis, stream: str, *, upper: str = "+", count: int) -> list[StreamEntry]:
    """XREVRANGE, typed: the newest `count` entries at or below `upper`, newest first."""
    reply = await redis.xrevrange(stream, max=upper, min="-", count=count)
    return cast(list[StreamEntry], reply or [])


async def read_sent_alerts(redis: Redis, count: int) -> list[Alert]:
    """The newest `count` alerts sent, oldest first (unreadable ones skipped)."""
    alerts: list[Alert] = []
    for _, values in reversed(await revrange(redis, keys.ALERTS, count=count)):
        with contextlib.suppress(SchemaError):
            alerts.append(Alert.from_fields(values))
    return alerts


async def group_backlog(redis: Redis, streams: Sequence[str]) -> int:
    """Entries of `streams` not yet read by the `analytics` group."""
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    backlog = 0
    for groups in await pipe.execute(raise_on_error=False):
        if isinstance(groups, Exception):
            continue
        for group in groups:
            if group.get("name") == keys.ANALYTICS_GROUP and group.get("lag") is not None:
                backlog += int(group["lag"])
    return backlog
