"""What a push request watches, and what an event says (pure parts of push.py)."""

from __future__ import annotations

import orjson
import pytest

from services.dashboard.push import Subscription, event, forming_event, moved, newest_forming
from shared import keys
from shared.schemas import Forming
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
        "forming": PairView("BTCUSDT", "ETHUSDT", "1s", 120).forming_key(60),
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


def test_the_bar_in_progress_goes_as_it_is_in_an_event_of_its_own() -> None:
    streams = {"a": "bars:1s:BTCUSDT", "forming": "analytics:BTCUSDT-ETHUSDT:1s:forming"}
    older = Forming(1_000, 1_200, 1_201, 10, 11, 9, 10.5, 2, 3, 20, 21, 19, 20.5, 1, 2)
    newer = Forming(1_000, 1_400, 1_402, 10, 11, 9, 10.7, 3, 4, 20, 21, 19, 20.6, 1, 2, 0.5, 1.25)
    reply = [
        ["bars:1s:BTCUSDT", [("1-0", {})]],
        [streams["forming"], [("2-0", older.to_fields()), ("3-0", newer.to_fields()),
                              ("4-0", {"start": "broken"})]],
    ]  # fmt: skip
    assert moved(reply, streams) == {"a": "1-0"}, "not a chart stream"
    assert newest_forming(reply, streams) == newer, "the newest readable entry"
    assert newest_forming([reply[0]], streams) is None
    head, data = forming_event(newer).removesuffix("\n\n").split("\n")
    assert head == "event: forming"
    sent = orjson.loads(data.removeprefix("data: "))
    assert sent["a_close"] == 10.7 and sent["zscore"] == 1.25 and sent["recv_ts"] == 1_402
