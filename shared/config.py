"""Every environment variable the services read: typed, with defaults that work locally.

This is the only module that reads the environment. A bad value stops a service at start with
one line naming the variable and the value (`ConfigError`), never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,30}\Z")
TIMEFRAME_PATTERN = re.compile(r"^([1-9][0-9]*)(s|m|h|d)\Z")
CONSUMER_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}\Z")
API_KEY_PATTERN = re.compile(r"^[A-Za-z0-9]{8,128}\Z")
Source = Literal["binance", "replay", "synthetic"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message is one line for the user."""


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def normalize_symbol(symbol: str) -> str:
    """Binance spells symbols upper case in events (`s`); this is the canonical form."""
    upper = symbol.strip().upper()
    if not SYMBOL_PATTERN.match(upper):
        raise ValueError(f"{symbol!r} is not a symbol (letters and digits, like BTCUSDT)")
    return upper


def timeframe_ms(tf: str) -> int:
    """Length of a timeframe such as `1s`, `1m`, `5m`, `1h`, `1d` in milliseconds."""
    match = TIMEFRAME_PATTERN.match(tf)
    if not match:
        raise ValueError(f"{tf!r} is not a timeframe (like 1s, 1m, 5m, 1h, 1d)")
    unit_ms = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[match.group(2)]
    return int(match.group(1)) * unit_ms


def _ws_base(value: str) -> str:
    parsed = urlparse(value.strip())
    if parsed.scheme not in {"ws", "wss"} or not parsed.hostname:
        raise ValueError("expected a ws:// or wss:// URL")
    return value.strip().rstrip("/")


MAX_SYMBOLS = 50
"""The largest universe served (1,225 pairs): the worker computes every pair on every bar."""


class Settings(BaseSettings):
    """All services' configuration. Field `x_y` is read from the variable `X_Y`."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, allow_inf_nan=False
    )

    # Shared by every service.
    redis_url: str = "redis://127.0.0.1:6379/0"
    symbols: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT", "ETHUSDT")
    sqlite_path: Path = Path("data/ticks.db")
    log_level: LogLevel = "INFO"
    log_format: Literal["text", "json"] = "text"
    health_interval_s: float = Field(default=1.0, gt=0, le=60)

    # Stream caps (XADD MAXLEN ~); SQLite keeps everything, Redis keeps the recent part.
    maxlen_ticks: int = Field(default=200_000, ge=1_000)
    maxlen_bars: int = Field(default=20_000, ge=100)
    maxlen_analytics: int = Field(default=20_000, ge=100)
    maxlen_alerts: int = Field(default=10_000, ge=100)
    maxlen_events: int = Field(default=10_000, ge=100)
    maxlen_deadletter: int = Field(default=10_000, ge=100)

    # Ingestor.
    source: Source = "binance"
    binance_ws_url: str = "wss://fstream.binance.com"
    """The WebSocket host; the path of each stream kind comes from `services.ingestor.routes`.
    An old value ending in a path (`.../market`) still works: that path is tried first."""
    binance_stream: Literal["trade", "aggTrade"] = "trade"
    binance_fallback_after: int = Field(default=3, ge=1, le=100)
    """Silent connections in a row that REST could not judge before the next route is tried."""
    binance_stale_timeout_s: float = Field(default=30.0, gt=0, le=3_600)
    binance_rest_url: str = "https://fapi.binance.com"
    binance_api_key: str = Field(default="", repr=False)
    """With a key, gaps are back-filled trade by trade (`historicalTrades`); without one, from
    aggregate trades. Never logged nor shown."""
    binance_rest_weight_per_min: int = Field(default=1_000, ge=50, le=2_400)
    binance_rest_timeout_s: float = Field(default=10.0, gt=0, le=120)
    binance_reconnect_base_s: float = Field(default=1.0, gt=0, le=30)
    binance_reconnect_max_s: float = Field(default=30.0, gt=0, le=30)
    binance_max_age_s: float = Field(default=84_600.0, gt=0, le=86_400)
    ingest_queue_size: int = Field(default=200_000, ge=100, le=10_000_000)
    ingest_batch: int = Field(default=1_000, ge=1, le=10_000)
    replay_file: Path | None = None
    replay_speed: float = Field(default=1.0, ge=0)
    replay_shift: bool = False
    replay_loop: bool = False
    synthetic_seed: int = Field(default=7, ge=0)
    synthetic_hedge_ratio: float = Field(default=1.5, gt=0, le=1_000)
    synthetic_mean_reversion: float = Field(default=0.02, gt=0, le=100)
    synthetic_noise: float = Field(default=0.05, gt=0, le=1_000)
    synthetic_tick_rate: float = Field(default=20.0, gt=0, le=100_000)
    synthetic_groups: Annotated[tuple[tuple[str, ...], ...], NoDecode] = ()
    """`a,b,c|d,e|f`: groups of `SYMBOLS`, each with a driver of its own, so pairs inside a
    group are cointegrated and pairs across groups are not; empty: one group of all."""

    # Writer.
    writer_consumer: str = ""
    """Consumer name in group `writer`; empty means `<hostname>-<pid>` (stable in a container)."""
    writer_batch_size: int = Field(default=2_000, ge=1, le=50_000)
    writer_batch_delay_ms: int = Field(default=100, ge=0, le=10_000)
    writer_claim_idle_ms: int = Field(default=30_000, ge=100, le=86_400_000)
    writer_claim_interval_s: float = Field(default=5.0, gt=0, le=3_600)
    writer_busy_timeout_ms: int = Field(default=5_000, ge=0, le=600_000)

    # Analytics.
    timeframes: Annotated[tuple[str, ...], NoDecode] = ("1s", "1m", "5m")
    window: int = Field(default=60, ge=3, le=100_000)
    pairs: Annotated[tuple[str, ...], NoDecode] = ()
    adf_every: int = Field(default=10, ge=1, le=100_000)
    bar_lateness_ms: int = Field(default=500, ge=10, le=60_000)
    bar_max_wait_ms: int = Field(default=2_000, ge=0, le=60_000)
    """Longest a bar waits (wall time) for a live symbol that lags behind the fastest one."""
    view_fill_bars: int = Field(default=500, ge=0, le=100_000)
    max_views: int = Field(default=50, ge=0, le=10_000)
    kalman_delta: float = Field(default=1e-3, gt=0, lt=1)

    # Dashboard.
    dash_host: str = "127.0.0.1"
    dash_port: int = Field(default=8050, ge=1, le=65_535)
    dash_debug: bool = False
    dash_update_ms: int = Field(default=500, ge=100, le=60_000)
    dash_max_points: int = Field(default=10_000, ge=100, le=200_000)
    dash_screen_points: int = Field(default=2_000, ge=100, le=100_000)
    dash_push_max_clients: int = Field(default=32, ge=0, le=1_000)
    dash_forming_ms: int = Field(default=250, ge=0, le=60_000)
    """How often the worker publishes each view's bar in progress (0: never)."""
    dash_history_max_bars: int = Field(default=500_000, ge=1_000, le=10_000_000)
    dash_upload_max_mb: float = Field(default=50.0, gt=0, le=1_024)
    dash_theme: Literal["dark", "light"] = "dark"
    dash_open_view: Literal["live", "screener"] = "live"
    """What a first visit opens on: the pair chart, or the screener of every pair."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
            return value.strip().upper()
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in {"redis", "rediss", "unix"} or not (parsed.hostname or parsed.path):
            raise ValueError("expected redis://host:port/db (or rediss://, unix://)")
        return value

    @field_validator("binance_ws_url")
    @classmethod
    def _check_ws_url(cls, value: str) -> str:
        return _ws_base(value)

    @field_validator("binance_rest_url")
    @classmethod
    def _check_rest_url(cls, value: str) -> str:
        parsed = urlparse(value.strip())
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError("expected an http:// or https:// URL")
        if parsed.path.strip("/") or parsed.query:
            raise ValueError("expected the host only, like https://fapi.binance.com")
        return value.strip().rstrip("/")

    @field_validator("binance_api_key")
    @classmethod
    def _check_api_key(cls, value: str) -> str:
        key = value.strip()
        if key and not API_KEY_PATTERN.match(key):
            raise ValueError("expected letters and digits only (a Binance API key)")
        return key

    @field_validator("writer_consumer")
    @classmethod
    def _check_consumer(cls, value: str) -> str:
        if value and not CONSUMER_PATTERN.match(value):
            raise ValueError("expected letters, digits and . _ : @ - (at most 64), or empty")
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _parse_symbols(cls, value: Any) -> Any:
        symbols = tuple(normalize_symbol(s) for s in _split_list(value))
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if len(set(symbols)) != len(symbols):
            raise ValueError("a symbol is listed twice")
        if len(symbols) > MAX_SYMBOLS:
            raise ValueError(f"{len(symbols)} symbols; at most {MAX_SYMBOLS} (MAX_SYMBOLS)")
        return symbols

    @field_validator("synthetic_groups", mode="before")
    @classmethod
    def _parse_groups(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return ()
        groups = tuple(tuple(normalize_symbol(s) for s in _split_list(g)) for g in value.split("|"))
        if any(not group for group in groups):
            raise ValueError("a group is empty (two | in a row, or one at an end)")
        return groups

    @field_validator("timeframes", mode="before")
    @classmethod
    def _parse_timeframes(cls, value: Any) -> Any:
        timeframes = tuple(_split_list(value))
        for tf in timeframes:
            timeframe_ms(tf)
        if not timeframes:
            raise ValueError("at least one timeframe is needed")
        ordered = tuple(sorted(set(timeframes), key=timeframe_ms))
        finest = timeframe_ms(ordered[0])
        for tf in ordered[1:]:
            if timeframe_ms(tf) % finest:
                raise ValueError(f"{tf} is not a whole number of {ordered[0]} bars")
        return ordered

    @field_validator("pairs", mode="before")
    @classmethod
    def _parse_pairs(cls, value: Any) -> Any:
        pairs = []
        for pair in _split_list(value):
            legs = pair.split("-")
            if len(legs) != 2:
                raise ValueError(f"{pair!r} is not a pair like BTCUSDT-ETHUSDT")
            a, b = (normalize_symbol(leg) for leg in legs)
            if a == b:
                raise ValueError(f"{pair!r} needs two different symbols")
            pairs.append(f"{a}-{b}")
        if len(set(pairs)) != len(pairs):
            raise ValueError("a pair is listed twice")
        return tuple(pairs)

    @model_validator(mode="after")
    def _check_pairs(self) -> Settings:
        for pair in self.pairs:
            unknown = [leg for leg in pair.split("-") if leg not in self.symbols]
            if unknown:
                raise ValueError(
                    f"PAIRS={pair!r}: {', '.join(unknown)} is not in SYMBOLS "
                    f"({','.join(self.symbols)})"
                )
        return self

    @model_validator(mode="after")
    def _check_groups(self) -> Settings:
        listed = [symbol for group in self.synthetic_groups for symbol in group]
        twice = sorted({symbol for symbol in listed if listed.count(symbol) > 1})
        if twice:
            raise ValueError(f"SYNTHETIC_GROUPS: {', '.join(twice)} is in two groups")
        unknown = [symbol for symbol in listed if symbol not in self.symbols]
        if unknown:
            known = ",".join(self.symbols)
            raise ValueError(f"SYNTHETIC_GROUPS: {', '.join(unknown)} is not in SYMBOLS ({known})")
        if listed:
            missing = [symbol for symbol in self.symbols if symbol not in listed]
            if missing:
                raise ValueError(f"SYNTHETIC_GROUPS: {', '.join(missing)} is in no group")
        return self

    @property
    def market_groups(self) -> tuple[tuple[str, ...], ...]:
        """The synthetic market's groups: `SYNTHETIC_GROUPS`, or one group of every symbol."""
        return self.synthetic_groups or (self.symbols,)

    @property
    def pair_legs(self) -> tuple[tuple[str, str], ...]:
        """The pairs served: `PAIRS`, or every pair of `SYMBOLS` in listed order (A first)."""
        if self.pairs:
            return tuple((pair.split("-")[0], pair.split("-")[1]) for pair in self.pairs)
        return tuple((a, b) for i, a in enumerate(self.symbols) for b in self.symbols[i + 1 :])

    @model_validator(mode="after")
    def _check_reconnect(self) -> Settings:
        if self.binance_reconnect_base_s > self.binance_reconnect_max_s:
            raise ValueError(
                f"BINANCE_RECONNECT_BASE_S={self.binance_reconnect_base_s} is above "
                f"BINANCE_RECONNECT_MAX_S={self.binance_reconnect_max_s}"
            )
        return self

    @model_validator(mode="after")
    def _check_replay(self) -> Settings:
        if self.source == "replay":
            if self.replay_file is None:
                raise ValueError("SOURCE=replay needs REPLAY_FILE")
            if not self.replay_file.is_file():
                raise ValueError(f"REPLAY_FILE={str(self.replay_file)!r}: no such file")
        return self


SECRETS = frozenset({"BINANCE_API_KEY"})
"""Variables whose value an error message never quotes."""
RETIRED = {
    "BINANCE_LEGACY_WS_URL": "the unrouted path of BINANCE_WS_URL's host is one of the routes "
    "tried now (services/ingestor/routes.py)",
}
"""Variables older versions read, and what replaced them: reported at start, not an error."""


def retired_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per retired variable that `environ` (the process's by default) still sets."""
    environ = os.environ if environ is None else environ
    return [
        f"{name} is no longer read: {why}"
        for name, why in RETIRED.items()
        if name in {key.upper() for key in environ}
    ]


def _describe(error: Any) -> str:
    location = error.get("loc") or ()
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if not location:
        return message
    variable = str(location[0]).upper()
    shown = "<hidden>" if variable in SECRETS else repr(error.get("input"))
    return f"{variable}={shown}: {message}"


def section(settings: Settings, prefix: str, record: type[Record], **extras: Any) -> Record:
    """A frozen dataclass `record` built from the settings `prefix + field name` (its field
    `seed` from `synthetic_seed` with prefix `synthetic_`). `extras` give the fields that are
    not settings as they are; a field that is neither keeps its default."""
    values = dict(extras)
    for spec in dataclasses.fields(record):
        name = prefix + spec.name
        if spec.name not in values and name in Settings.model_fields:
            values[spec.name] = getattr(settings, name)
    return record(**values)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (overrides win, for CLIs); raise `ConfigError` on a bad value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        details = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"configuration error: {details}") from None
