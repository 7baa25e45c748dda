"""What a push request watches, and what an event says (pure parts of push.py)."""

from __future__ import annotations

import orjson
import pytest

from services.dashboard.push import Subscription, event, moved
from shared import keys
from shared.views import PairView

LIVE = {"mode": "live", "a": "BTCUSDT", "b": "ETHUSDT", "tf": "1s", "window": 120,
        "method": "ols", "k": 2.0}  # fmt: skip


def test_a_live_view_watches_its_bars_statistics_and_alerts() -> None:
    watched = Subscription.of_request(orjson.dumps(LIVE).decode(), 60).streams
    assert watched == {
        "a": keys.bars("1s", "BTCUSDT"),
        "b": keys.bars("1s", "ETHUSDT"),
        "stats": PairView("BTCUSDT", "ETHUSDT", "1s", 120).stream_key(60),
        "alerts": keys.ALERTS,
    }


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (None, "missing"),
        ("{", "not JSON"),
        (orjson.dumps({**LIVE, "window": "x"}).decode(), "not a view"),
        (orjson.dumps([1]).decode(), "not a view"),
        (orjson.dumps({**LIVE, "mode": "history", "start_ms": 1, "end_ms": 2}).decode(),
         "only a live view"),
    ],
)  # fmt: skip
def test_a_bad_request_says_what_is_wrong(query: str | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Subscription.of_request(query, 60)


def test_an_event_names_the_newest_id_of_each_stream_that_moved() -> None:
    streams = {"a": "bars:1s:BTCUSDT", "b": "bars:1s:ETHUSDT"}
    reply = [["bars:1s:BTCUSDT", [("1-0", {}), ("2-0", {})]], ["bars:1s:ETHUSDT", []]]
    assert moved(reply, streams) == {"a": "2-0"}
    assert moved(None, streams) == {}
    assert event({"a": "2-0"}) == 'data: {"a":"2-0"}\n\n'
