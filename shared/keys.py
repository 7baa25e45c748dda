"""Every Redis key, stream, channel and consumer-group name. No service spells a key itself.

Symbols are upper case, as Binance spells them in the `s` field of its events.
"""

from __future__ import annotations

from shared.config import normalize_symbol, timeframe_ms

ALERTS = "alerts"
"""Stream of fired alerts; also the pub/sub channel on which each firing is published."""
ALERT_SENT_PREFIX = "alert-sent:"
ALERT_SENT_TTL_MS = 86_400_000
ALERT_RULES = "alert-rules"
"""Hash: rule id -> rule as JSON."""
EVENTS = "events"
"""Stream of operational events (connected, disconnected, stale, gap, ...)."""

MARKETS = "markets"
"""Hash: symbol -> the market its ticks come from (`exchange` or `synthetic`, `shared.market`),
recorded by the ingestor the first time it serves the symbol."""

ANALYTICS_VIEWS = "analytics-views"
"""Sorted set of pair views users asked for: member = view id (`shared.views`), score = expiry
epoch ms. The dashboard renews its view; the worker serves every unexpired one."""
ANALYTICS_REQUESTS = "analytics-requests"
"""Stream of one-off requests to the worker: `kind` (`adf`), `view` (a view id), `ts`."""

INGEST_LIBRARY = "quantpairs"
"""Redis Function library (FUNCTION LOAD) that the ingestor publishes ticks through."""
PUBLISH_TICKS = "quantpairs_publish_ticks"
"""Function of `INGEST_LIBRARY`: one call appends a batch of ticks to their `ticks:*` streams
and records the gaps the batch revealed in their `gaps:*` hashes."""
PUBLISH_BACKFILL = "quantpairs_publish_backfill"
"""Function of `INGEST_LIBRARY`: one call appends back-filled ticks to `backfill:<SYMBOL>` and
updates the gap they fill in `gaps:<SYMBOL>`, atomically."""

WRITER_GROUP = "writer"
WRITER_ALIVE_PREFIX = "writer-alive:"
ANALYTICS_GROUP = "analytics"

SERVICES = ("ingestor", "writer", "analytics", "dashboard")
HEALTH_PREFIX = "health:"


def ticks(symbol: str) -> str:
    """Stream of normalized trades of one symbol: `ticks:BTCUSDT`."""
    return f"ticks:{normalize_symbol(symbol)}"


def backfill(symbol: str) -> str:
    """Stream of ticks fetched from REST for the gaps of one symbol: `backfill:BTCUSDT`. They are
    older than the live stream's newest, so they have a stream of their own; the writer stores
    them like `ticks:*`."""
    return f"backfill:{normalize_symbol(symbol)}"


def gaps(symbol: str) -> str:
    """Hash of one symbol's trade-id gaps waiting to be back-filled: `gaps:BTCUSDT`, field = first
    missing id, value = `<last missing id> <trade time before> <trade time after>`."""
    return f"gaps:{normalize_symbol(symbol)}"


def writer_alive(consumer: str) -> str:
    """Liveness key of one writer of group `writer`, kept with a TTL of a few heartbeats:
    `writer-alive:host-123`. Once it is gone, another writer takes the consumer's pending
    entries over at once."""
    if not consumer or any(c.isspace() for c in consumer):
        raise ValueError(f"consumer name {consumer!r} is empty or has spaces")
    return f"{WRITER_ALIVE_PREFIX}{consumer}"


def bars(tf: str, symbol: str) -> str:
    """Stream of closed bars of one symbol and timeframe: `bars:1m:BTCUSDT`."""
    timeframe_ms(tf)
    return f"bars:{tf}:{normalize_symbol(symbol)}"


def pair_name(symbol_a: str, symbol_b: str) -> str:
    """The pair as it appears in keys and alert rules: `BTCUSDT-ETHUSDT` (A first)."""
    return f"{normalize_symbol(symbol_a)}-{normalize_symbol(symbol_b)}"


def analytics(symbol_a: str, symbol_b: str, tf: str, variant: str = "") -> str:
    """Stream of per-bar pair statistics: `analytics:BTCUSDT-ETHUSDT:1m`.

    The default series (window `WINDOW`, OLS hedge) has no variant; a view a user asked for with
    other parameters has one, `w<window>:<method>`: `analytics:BTCUSDT-ETHUSDT:1m:w120:kalman`.
    """
    timeframe_ms(tf)
    base = f"analytics:{pair_name(symbol_a, symbol_b)}:{tf}"
    return f"{base}:{variant}" if variant else base


def analytics_latest(symbol_a: str, symbol_b: str, tf: str, variant: str = "") -> str:
    """Hash holding the newest entry of `analytics(a, b, tf, variant)`."""
    return f"{analytics(symbol_a, symbol_b, tf, variant)}:latest"


def correlation(tf: str) -> str:
    """Hash of the universe's correlation matrix of log returns at one timeframe, as of its
    newest closed bar (`shared.correlation.CorrelationMatrix`): `analytics:corr:1m:latest`."""
    timeframe_ms(tf)
    return f"analytics:corr:{tf}:latest"


def screener(tf: str, variant: str = "") -> str:
    """Hash of the screener's rows of one series at one timeframe, one field per pair served
    (`shared.screener.ScreenRow` as JSON): `analytics:screen:1m`, or
    `analytics:screen:1m:w120:kalman` for the views asked for with other parameters."""
    timeframe_ms(tf)
    base = f"analytics:screen:{tf}"
    return f"{base}:{variant}" if variant else base


FORMING_MAXLEN = 100
"""Entries kept on a `:forming` stream: a page only wants the newest."""


def analytics_forming(symbol_a: str, symbol_b: str, tf: str, variant: str = "") -> str:
    """Stream of the view's bars in progress and provisional z-score (`shared.schemas.Forming`),
    capped at `FORMING_MAXLEN`: `analytics:BTCUSDT-ETHUSDT:1m:forming`."""
    return f"{analytics(symbol_a, symbol_b, tf, variant)}:forming"


def alert_sent(rule_id: str, tf: str, ts: int) -> str:
    """Marker (kept `ALERT_SENT_TTL_MS`) that the alert of a rule at one bar went out:
    `alert-sent:z2:1m:1765892520000`. Sending an alert again (a batch resent after a broken
    connection, a restart) finds it and adds nothing."""
    return f"{ALERT_SENT_PREFIX}{rule_id}:{tf}:{ts}"


def health(service: str) -> str:
    """Hash with a service's `status`, `updated` (epoch ms) and counters: `health:writer`."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return f"{HEALTH_PREFIX}{service}"


def deadletter(service: str) -> str:
    """Stream of inputs a service could not process, raw, with the reason."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return f"deadletter:{service}"


UPLOAD_TTL_S = 3_600
DASHBOARD_UPLOAD_PREFIX = "dashboard:upload:"


def dashboard_upload(token: str) -> str:
    """String holding one uploaded OHLC file, parsed (compressed JSON), kept `UPLOAD_TTL_S`:
    `dashboard:upload:<token>`. The browser holds only the token."""
    if not token.isalnum() or len(token) > 64:
        raise ValueError(f"upload token {token!r} must be letters and digits")
    return f"{DASHBOARD_UPLOAD_PREFIX}{token}"
