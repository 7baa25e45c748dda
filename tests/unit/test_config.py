"""Settings: defaults that work locally, parsing, and one clear line per bad value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.config import ConfigError, Settings, load_settings, section, timeframe_ms

VARIABLES = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_work_locally() -> None:
    settings = load_settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.symbols == ("BTCUSDT", "ETHUSDT")
    assert settings.sqlite_path == Path("data/ticks.db")
    assert settings.binance_ws_url == "wss://fstream.binance.com"
    assert settings.binance_rest_url == "https://fapi.binance.com"
    assert settings.binance_api_key == ""
    assert settings.source == "binance"
    assert (settings.dash_host, settings.dash_port) == ("127.0.0.1", 8050)
    assert settings.timeframes == ("1s", "1m", "5m")


def test_reads_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    replay = tmp_path / "ticks.ndjson"
    replay.write_text("")
    monkeypatch.setenv("SYMBOLS", " solusdt, BtcUsdt ,")
    monkeypatch.setenv("SOURCE", "replay")
    monkeypatch.setenv("REPLAY_FILE", str(replay))
    monkeypatch.setenv("REPLAY_SPEED", "0")
    monkeypatch.setenv("DASH_PORT", "9000")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("TIMEFRAMES", "5m,1s")
    settings = load_settings()
    assert settings.symbols == ("SOLUSDT", "BTCUSDT")
    assert settings.replay_file == replay
    assert settings.replay_speed == 0
    assert settings.dash_port == 9000
    assert settings.log_level == "DEBUG"
    assert settings.timeframes == ("1s", "5m")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("REDIS_URL", "http://localhost", "expected redis://"),
        ("SYMBOLS", "btc-usdt", "is not a symbol"),
        ("SYMBOLS", " , ", "at least one symbol"),
        ("SYMBOLS", "btcusdt,BTCUSDT", "listed twice"),
        ("SOURCE", "kraken", "'binance', 'replay' or 'synthetic'"),
        ("BINANCE_WS_URL", "https://fstream.binance.com", "ws:// or wss://"),
        ("REPLAY_SPEED", "-1", "greater than or equal to 0"),
        ("REPLAY_SPEED", "fast", "valid number"),
        ("REPLAY_SPEED", "inf", "finite number"),
        ("REPLAY_SPEED", "nan", "finite number"),
        ("DASH_UPLOAD_MAX_MB", "NaN", "finite number"),
        ("DASH_PORT", "70000", "less than or equal to 65535"),
        ("LOG_LEVEL", "loud", "expected one of DEBUG"),
        ("TIMEFRAMES", "1s,90x", "is not a timeframe"),
        ("WINDOW", "1", "greater than or equal to 3"),
        ("WRITER_CONSUMER", "two words", "expected letters, digits"),
        ("WRITER_BATCH_SIZE", "0", "greater than or equal to 1"),
        ("WRITER_BATCH_DELAY_MS", "-1", "greater than or equal to 0"),
        ("WRITER_CLAIM_IDLE_MS", "10", "greater than or equal to 100"),
        ("WRITER_CLAIM_INTERVAL_S", "0", "greater than 0"),
        ("WRITER_BUSY_TIMEOUT_MS", "soon", "valid integer"),
        (
            "SYMBOLS",
            ",".join(f"S{i}USDT" for i in range(51)),
            "51 symbols; at most 50 (MAX_SYMBOLS)",
        ),
        ("SYNTHETIC_GROUPS", "btcusdt||ethusdt", "a group is empty"),
    ],
)
def test_bad_value_is_one_line_naming_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert f"{variable}={value!r}" in message
    assert expected in message


def test_replay_needs_an_existing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE", "replay")
    with pytest.raises(ConfigError, match="SOURCE=replay needs REPLAY_FILE"):
        load_settings()
    monkeypatch.setenv("REPLAY_FILE", str(tmp_path / "missing.ndjson"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_synthetic_groups_cover_the_symbols_once_each() -> None:
    cases = {
        ("BTCUSDT,ETHUSDT", "btcusdt|btcusdt,ethusdt"): "BTCUSDT is in two groups",
        ("BTCUSDT,ETHUSDT,SOLUSDT", "btcusdt,ethusdt"): "SOLUSDT is in no group",
        ("BTCUSDT,ETHUSDT", "btcusdt,ethusdt|xrpusdt"): "XRPUSDT is not in SYMBOLS",
    }
    for (symbols, groups), expected in cases.items():
        with pytest.raises(ConfigError, match=expected) as caught:
            load_settings(symbols=symbols, synthetic_groups=groups)
        assert "\n" not in str(caught.value)


def test_a_group_of_one_is_allowed_and_no_groups_is_one_group_of_all() -> None:
    grouped = load_settings(
        symbols="BTCUSDT,ETHUSDT,DOGEUSDT", synthetic_groups="btcusdt,ethusdt|dogeusdt"
    )
    assert grouped.market_groups == (("BTCUSDT", "ETHUSDT"), ("DOGEUSDT",))
    assert load_settings(symbols="BTCUSDT,ETHUSDT").market_groups == (("BTCUSDT", "ETHUSDT"),)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.window = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tf", "ms"),
    [("1s", 1_000), ("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000)],
)
def test_timeframe_ms(tf: str, ms: int) -> None:
    assert timeframe_ms(tf) == ms


@pytest.mark.parametrize("tf", ["", "0s", "1", "m", "1w", "-1m", "1.5m"])
def test_timeframe_rejects(tf: str) -> None:
    with pytest.raises(ValueError, match="is not a timeframe"):
        timeframe_ms(tf)


@dataclass(frozen=True)
class _Part:
    seed: int
    noise: float
    symbols: tuple[str, ...]
    unset: int = 4


def test_section_reads_prefixed_settings_and_takes_the_rest_as_given() -> None:
    settings = load_settings(synthetic_seed=11, synthetic_noise=0.5)
    part = section(settings, "synthetic_", _Part, symbols=("A", "B"))
    assert part == _Part(seed=11, noise=0.5, symbols=("A", "B"), unset=4)
    assert section(settings, "synthetic_", _Part, symbols=(), seed=2).seed == 2
