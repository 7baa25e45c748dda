"""Pair views: ids round-trip, bad ids and parameters are refused with the reason."""

from __future__ import annotations

import pytest

from shared.views import PairView


def test_view_id_round_trip_and_keys() -> None:
    view = PairView("btcusdt", "ethusdt", "1m", 120, "kalman")
    assert view.id == "BTCUSDT-ETHUSDT:1m:w120:kalman"
    assert PairView.parse(view.id) == view
    assert view.stream_key(60) == "analytics:BTCUSDT-ETHUSDT:1m:w120:kalman"
    assert view.latest_key(60) == "analytics:BTCUSDT-ETHUSDT:1m:w120:kalman:latest"


def test_default_view_uses_the_default_keys() -> None:
    view = PairView("BTCUSDT", "ETHUSDT", "5m", 60)
    assert view.is_default(60)
    assert view.stream_key(60) == "analytics:BTCUSDT-ETHUSDT:5m"
    assert view.latest_key(60) == "analytics:BTCUSDT-ETHUSDT:5m:latest"
    assert not view.is_default(30)


@pytest.mark.parametrize(
    ("view_id", "message"),
    [
        ("BTCUSDT-ETHUSDT:1m", "is not a view id"),
        ("BTCUSDT-ETHUSDT:1m:w60:lasso", "method 'lasso'"),
        ("BTCUSDT-BTCUSDT:1m:w60:ols", "two different symbols"),
        ("BTCUSDT-ETHUSDT:1m:w2:ols", "window 2 is outside"),
        ("BTCUSDT-ETHUSDT:0m:w60:ols", "is not a timeframe"),
    ],
)
def test_bad_view_ids_say_why(view_id: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PairView.parse(view_id)
