"""What the dashboard reads from Redis and SQLite, as plain records (no Dash here).

Every read is one pipelined round trip. Entries that do not match their schema are skipped and
counted, never shown as zeros. Nothing here keeps state between calls: the browser holds the
stream positions it has seen (see `cursor.py`). The records are in `records.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import redis

from services.dashboard.records import (
    ROLES,
    START,
    FeedHealth,
    PipelineHealth,
    RuleRow,
    ServiceHealth,
    Snapshot,
)
from services.dashboard.screener import ScreenerRead
from shared import keys
from shared.alert_rules import RuleError, parse_rule
from shared.config import Settings
from shared.correlation import CorrelationMatrix
from shared.health import now_ms, stale_after_ms
from shared.history import History
from shared.redis_io import RAW_REPLY, decoded, text_hash
from shared.schemas import Alert, Bar, Event, PairStat, SchemaError
from shared.streamids import id_ms
from shared.tickdb import TickDbError
from shared.views import PairView

T = TypeVar("T")
FEED_KINDS = ("connected", "disconnected", "stale", "connect_failed")
"""Event kinds that say whether a symbol's feed is up; the latest one per symbol wins."""
DEFAULT_STALE_AFTER_MS = stale_after_ms(Settings.model_fields["health_interval_s"].default)
"""At the default heartbeat interval; the dashboard passes the one of its settings."""


# Health ---------------------------------------------------------------------------------------


def _service(record: dict[str, str], service: str, at: int, stale_after_ms: int) -> ServiceHealth:
    record = dict(record)
    updated = record.pop("updated", None)
    status = record.pop("status", "missing")
    record.pop("started", None)
    age = at - int(updated) if updated and updated.isdigit() else None
    return ServiceHealth(service, status, age, record, stale_after_ms)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _id_ms(entry_id: str | None) -> int | None:
    try:
        return id_ms(entry_id) if entry_id else None
    except ValueError:
        return None


def _feed_state(events: Sequence[Event], symbol: str) -> tuple[str, str, int | None]:
    for event in events:
        if event.service == "ingestor" and event.symbol == symbol and event.kind in FEED_KINDS:
            return event.kind, event.detail, event.ts
    return "unknown", "", None


def read_health(
    client: redis.Redis,
    symbols: Sequence[str] = (),
    *,
    stale_after_ms: int = DEFAULT_STALE_AFTER_MS,
    event_count: int = 200,
) -> PipelineHealth:
    """Every service's record in pipeline order, each symbol's feed, and the latest events
    (newest first); `redis_ok=False` when Redis does not answer."""
    try:
        pipe = client.pipeline(transaction=False)
        for service in keys.SERVICES:
            pipe.hgetall(keys.health(service))
        pipe.xrevrange(keys.EVENTS, count=event_count)
        for symbol in symbols:
            pipe.xinfo_stream(keys.ticks(symbol))
            pipe.xinfo_groups(keys.ticks(symbol))
        replies = pipe.execute(raise_on_error=False)
    except redis.RedisError as exc:
        return PipelineHealth(redis_ok=False, redis_error=str(exc), services=())
    for reply in replies:
        if isinstance(reply, redis.ConnectionError | redis.TimeoutError):
            return PipelineHealth(redis_ok=False, redis_error=str(reply), services=())
    at = now_ms()
    records = replies[: len(keys.SERVICES)]
    services = tuple(
        _service(decoded(r) if isinstance(r, dict) else {}, s, at, stale_after_ms)
        for s, r in zip(keys.SERVICES, records, strict=True)
    )
    raw_events = replies[len(keys.SERVICES)]
    events = tuple(
        _parse(Event.from_fields, raw_events if isinstance(raw_events, list) else [], [])
    )
    feeds = []
    infos = replies[len(keys.SERVICES) + 1 :]
    for i, symbol in enumerate(symbols):
        info, groups = infos[2 * i], infos[2 * i + 1]
        stream = cast(dict[str, Any], info) if isinstance(info, dict) else {}
        lag = None
        if isinstance(groups, list):
            for group in groups:
                if isinstance(group, dict) and group.get("name") == keys.WRITER_GROUP:
                    lag = _int_or_none(group.get("lag"))
        state, detail, state_ms = _feed_state(events, symbol)
        feeds.append(
            FeedHealth(
                symbol=symbol,
                added=_int_or_none(stream.get("entries-added")),
                last_tick_ms=_id_ms(stream.get("last-generated-id")),
                writer_lag=lag,
                state=state,
                state_detail=detail,
                state_ms=state_ms,
            )
        )
    return PipelineHealth(True, "", services, tuple(feeds), events, at)


# Streams behind the charts ------------------------------------------------------------------


def stream_keys(view: PairView, default_window: int) -> dict[str, str]:
    return {
        "a": keys.bars(view.tf, view.a),
        "b": keys.bars(view.tf, view.b),
        "stats": view.stream_key(default_window),
        "alerts": keys.ALERTS,
    }


def _parse(parse: Callable[[dict[str, str]], T], entries: Any, errors: list[str]) -> list[T]:
    out: list[T] = []
    for entry in entries or []:
        try:
            out.append(parse(decoded(entry[1])))
        except (SchemaError, ValueError, TypeError, KeyError) as exc:
            errors.append(str(exc))
    return out


def _with_ids(
    parse: Callable[[dict[str, str]], T], entries: Any, errors: list[str]
) -> list[tuple[str, T]]:
    out: list[tuple[str, T]] = []
    for entry_id, fields in entries or []:
        try:
            out.append((str(entry_id), parse(decoded(fields))))
        except (SchemaError, ValueError, TypeError, KeyError) as exc:
            errors.append(str(exc))
    return out


def _snapshot(replies: list[Any], view: PairView, *, oldest_first: bool) -> Snapshot:
    errors: list[str] = []
    ordered = [r if oldest_first else list(reversed(r or [])) for r in replies[:4]]
    alerts = _with_ids(Alert.from_fields, ordered[3], errors)
    snap = Snapshot(
        bars_a=_with_ids(Bar.from_fields, ordered[0], errors),
        bars_b=_with_ids(Bar.from_fields, ordered[1], errors),
        stats=_with_ids(PairStat.from_fields, ordered[2], errors),
        alerts=alerts,
        latest=decoded(replies[4] or {}),
    )
    snap.skipped = len(errors)
    return snap


def read_recent(
    client: redis.Redis, view: PairView, default_window: int, limit: int, alert_scan: int = 1_000
) -> Snapshot:
    """The newest `limit` entries of each chart stream (the newest `alert_scan` alerts)."""
    streams = stream_keys(view, default_window)
    pipe = client.pipeline(transaction=False)
    for role in ROLES:
        pipe.xrevrange(streams[role], count=alert_scan if role == "alerts" else limit)
    pipe.hgetall(view.latest_key(default_window))
    snap = _snapshot(pipe.execute(), view, oldest_first=False)
    snap.tails = snap.newest_ids({role: START for role in ROLES})
    return snap


def read_since(
    client: redis.Redis,
    view: PairView,
    default_window: int,
    after: dict[str, str],
    limit: int,
) -> Snapshot:
    """Entries after the ids the browser has seen (at most `limit` per stream), each stream's
    newest id, and the latest-statistics hash: one round trip, cost independent of history."""
    streams = stream_keys(view, default_window)
    pipe = client.pipeline(transaction=False)
    for role in ROLES:
        start = after.get(role, START)
        pipe.xrange(streams[role], min="-" if start == START else f"({start}", count=limit)
    pipe.hgetall(view.latest_key(default_window))
    for role in ROLES:
        pipe.xrevrange(streams[role], count=1)
    replies = pipe.execute()
    snap = _snapshot(replies, view, oldest_first=True)
    snap.tails = {
        role: str(reply[0][0]) if reply else START
        for role, reply in zip(ROLES, replies[5:], strict=True)
    }
    return snap


def read_on_screen(
    client: redis.Redis,
    view: PairView,
    default_window: int,
    ids: dict[str, str],
    counts: dict[str, int],
) -> Snapshot:
    """Exactly the entries the browser holds: for each chart stream, the `counts[role]` entries
    up to and including `ids[role]`, oldest first (alerts are not included)."""
    streams = stream_keys(view, default_window)
    pipe = client.pipeline(transaction=False)
    for role in ROLES[:3]:
        last, count = ids.get(role, START), counts.get(role, 0)
        if last == START or count <= 0:
            pipe.echo("")
        else:
            pipe.xrevrange(streams[role], max=last, count=count)
    replies = [r if isinstance(r, list) else [] for r in pipe.execute()]
    return _snapshot([*replies, [], {}], view, oldest_first=False)


# Alerts ---------------------------------------------------------------------------------------


def read_alerts(client: redis.Redis, count: int) -> list[tuple[str, Alert]]:
    """The newest `count` fired alerts, newest first."""
    entries = client.xrevrange(keys.ALERTS, count=count)
    return _with_ids(Alert.from_fields, entries, [])


def read_alerts_after(client: redis.Redis, after: str, limit: int) -> list[tuple[str, Alert]]:
    """Alerts fired after id `after`, oldest first."""
    start = "-" if after == START else f"({after}"
    return _with_ids(Alert.from_fields, client.xrange(keys.ALERTS, min=start, count=limit), [])


def read_rules(client: redis.Redis) -> list[RuleRow]:
    rows = []
    stored = client.execute_command("HGETALL", keys.ALERT_RULES, **RAW_REPLY)  # type: ignore[no-untyped-call]
    for rule_id, raw in sorted(text_hash(stored).items()):
        try:
            rows.append(RuleRow(rule_id, raw, parse_rule(raw)))
        except RuleError as exc:
            rows.append(RuleRow(rule_id, raw, None, str(exc)))
    return rows


def read_rule(client: redis.Redis, rule_id: str) -> str | None:
    """The JSON stored under `rule_id`, None when there is no such rule."""
    raw = client.hget(keys.ALERT_RULES, rule_id)
    return None if raw is None else str(raw)


# History (SQLite, read-only) ------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryBars:
    """Both legs' bars, one array per field read (`History.bar_columns`)."""

    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]


def read_history_span(path: Path, symbols: Sequence[str]) -> dict[str, tuple[int, int] | None]:
    """First and last stored trade per symbol; empty when there is no database yet."""
    history = History(path)
    try:
        return {symbol: history.span(symbol) for symbol in symbols}
    except TickDbError:
        return {}
    finally:
        history.close()


def read_history_bars(
    path: Path, a: str, b: str, tf: str, start_ms: int, end_ms: int, names: Sequence[str]
) -> HistoryBars:
    """The bar fields `names` of both legs in `[start_ms, end_ms)` from the tick database
    (read-only).

    Raises `TickDbError` when the database does not exist yet.
    """
    history = History(path)
    try:
        return HistoryBars(
            history.bar_columns(a, tf, start_ms, end_ms, names),
            history.bar_columns(b, tf, start_ms, end_ms, names),
        )
    finally:
        history.close()


# The screener ---------------------------------------------------------------------------------


def read_screener(client: redis.Redis, series_key: str, tf: str) -> ScreenerRead:
    """The series' rows as stored (JSON by pair) and its timeframe's correlation matrix."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(series_key)
    pipe.hgetall(keys.correlation(tf))
    held, correlation = pipe.execute()
    try:
        matrix = CorrelationMatrix.from_fields(decoded(correlation)) if correlation else None
    except SchemaError:
        matrix = None
    return ScreenerRead(decoded(held or {}), matrix)
