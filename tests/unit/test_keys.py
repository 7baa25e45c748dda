"""Key names follow the contract table in the README, built only by `shared.keys`."""

from __future__ import annotations

import pytest

from shared import keys


def test_key_names_match_the_contract() -> None:
    assert keys.ticks("btcusdt") == "ticks:BTCUSDT"
    assert keys.bars("1m", "ethusdt") == "bars:1m:ETHUSDT"
    assert keys.analytics("btcusdt", "ETHUSDT", "5m") == "analytics:BTCUSDT-ETHUSDT:5m"
    assert (
        keys.analytics_latest("BTCUSDT", "ETHUSDT", "1s") == "analytics:BTCUSDT-ETHUSDT:1s:latest"
    )
    assert keys.health("writer") == "health:writer"
    assert keys.deadletter("ingestor") == "deadletter:ingestor"
    assert (keys.ALERTS, keys.ALERT_RULES, keys.EVENTS) == ("alerts", "alert-rules", "events")
    assert (keys.WRITER_GROUP, keys.ANALYTICS_GROUP) == ("writer", "analytics")


@pytest.mark.parametrize("symbol", ["", "BTC USDT", "btc:usdt", "x"])
def test_bad_symbol_rejected(symbol: str) -> None:
    with pytest.raises(ValueError, match="is not a symbol"):
        keys.ticks(symbol)


def test_bad_timeframe_and_service_rejected() -> None:
    with pytest.raises(ValueError, match="is not a timeframe"):
        keys.bars("7x", "BTCUSDT")
    with pytest.raises(ValueError, match="unknown service"):
        keys.health("scheduler")
