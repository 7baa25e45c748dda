"""The ingestor's pure parts: sequence, backoff, queue, replay ids and times, formats, settings."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
import pytest

from services.ingestor.binance import NonMarketPrint, TickRow
from services.ingestor.connection import FeedOptions, backoff_delays
from services.ingestor.intake import Lost, describe_lost
from services.ingestor.library import LIBRARY
from services.ingestor.replay import Relocation
from services.ingestor.replay_formats import (
    CollectorRows,
    ReplayError,
    decimal_text,
    detect_format,
    parse_iso_ms,
)
from services.ingestor.state import Sequence, SymbolState, place
from services.ingestor.tickqueue import TickQueue
from shared import keys
from shared.config import ConfigError, Settings, load_settings
from shared.schemas import RANGE_FIELDS, TICK_FIELDS


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def row(trade_id: int, symbol: str = "BTCUSDT", ts: int = 1_000) -> TickRow:
    return TickRow(ts, symbol, "1.5", "2", trade_id, "buy", 0)


def test_sequence_places_each_id_against_the_last() -> None:
    assert place(-1, 123) is Sequence.FIRST
    assert place(5, 6) is Sequence.NEXT
    assert place(5, 9) is Sequence.GAP
    assert place(5, 5) is Sequence.OLD
    assert place(5, 2) is Sequence.OLD


def test_symbol_state_counts_what_is_still_queued() -> None:
    state = SymbolState("BTCUSDT", ticks=10, published=6, duplicates=1, overflowed=2)
    assert state.queued == 1
    fields = state.health_fields()
    assert fields["queued:BTCUSDT"] == 1 and fields["connected:BTCUSDT"] == 0


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    highs = backoff_delays(1.0, 30.0, rng=lambda: 1.0)
    assert [highs(False) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert highs(True) == 1.0
    lows = backoff_delays(1.0, 30.0, rng=lambda: 0.0)
    assert [lows(False) for _ in range(3)] == [0.5, 1.0, 2.0]


def test_feed_options_read_the_host_and_an_old_style_path() -> None:
    options = FeedOptions.from_settings(load_settings())
    assert options.endpoint.host == "wss://fstream.binance.com"
    assert options.endpoint.pinned is None
    old = FeedOptions.from_settings(
        load_settings(binance_ws_url="wss://fstream.binance.com/market")
    )
    assert (old.endpoint.host, old.endpoint.pinned) == ("wss://fstream.binance.com", "/market")


async def test_queue_drops_the_oldest_waiting_tick_when_full() -> None:
    dropped: list[TickRow] = []
    queue = TickQueue(3, dropped.append)
    for i in range(1, 4):
        queue.put_nowait(row(i))
    batch = await queue.take(2)
    assert [r.trade_id for r in batch] == [1, 2] and len(queue) == 3  # in flight still counts
    queue.put_nowait(row(4))
    assert [r.trade_id for r in dropped] == [3]
    queue.done()
    queue.put_nowait(row(5))
    assert [r.trade_id for r in await queue.take(10)] == [4, 5]


async def test_queue_put_waits_for_room_instead_of_dropping() -> None:
    queue = TickQueue(2, lambda r: pytest.fail("nothing may be dropped"))
    await queue.put(row(1))
    await queue.put(row(2))
    waiting = asyncio.create_task(queue.put(row(3)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await queue.take(2)
    queue.done()
    await asyncio.wait_for(waiting, 1)
    queue.close()
    assert [r.trade_id for r in await queue.take(5)] == [3]
    assert await queue.take(5) == []


def test_lost_ticks_are_described_per_symbol() -> None:
    assert describe_lost({"BTCUSDT": Lost(3, 5, 7), "ETHUSDT": Lost(1, 9, 9)}) == (
        "lost 4 ticks: BTCUSDT 3 (ids 5..7), ETHUSDT 1 (ids 9..9)"
    )


def test_the_publish_functions_write_the_tick_fields_in_schema_order() -> None:
    assert f"#!lua name={keys.INGEST_LIBRARY}" in LIBRARY
    assert f"redis.register_function('{keys.PUBLISH_TICKS}', publish_ticks)" in LIBRARY
    assert f"redis.register_function('{keys.PUBLISH_BACKFILL}', publish_backfill)" in LIBRARY
    expected = ", ".join(f"'{name}', row[{i + 2}]" for i, name in enumerate(TICK_FIELDS))
    assert expected in LIBRARY
    assert "local id = row[6]" in LIBRARY  # trade_id
    ranged = (*TICK_FIELDS, *RANGE_FIELDS)
    assert ", ".join(f"'{name}', row[{i + 1}]" for i, name in enumerate(ranged)) in LIBRARY
    assert "local id = row[5]" in LIBRARY  # trade_id of a back-filled row


def test_relocation_without_shift_or_loop_changes_nothing() -> None:
    relocation = Relocation(shift=False)
    relocation.start(1_000, now=99_999)
    assert relocation.row(row(7), 0) == row(7)


def test_shift_moves_time_to_now_and_rebases_ids_on_it() -> None:
    relocation = Relocation(shift=True)
    relocation.start(1_000, now=5_000)
    assert relocation.row(row(70, ts=1_000), 0)[0::4] == (5_000, 5_000_000)
    assert relocation.row(row(72, ts=1_003), 0)[0::4] == (5_003, 5_000_002)
    eth = relocation.row(row(900, "ETHUSDT", ts=1_001), 0)
    assert (eth[0], eth[4]) == (5_001, 5_000_000)
    print_ = relocation.non_market(NonMarketPrint("BTCUSDT", 71, "NA", 1_002))
    assert (print_.trade_id, print_.ts) == (5_000_001, 5_002)


def test_each_loop_pass_follows_the_last_in_time_and_ids() -> None:
    relocation = Relocation(shift=False)
    relocation.start(1_000, now=0)
    first = [relocation.row(row(i, ts=1_000 + 10 * (i - 10)), 0) for i in range(10, 13)]
    relocation.next_pass()
    second = [relocation.row(row(i, ts=1_000 + 10 * (i - 10)), 0) for i in range(10, 13)]
    relocation.next_pass()
    third = relocation.row(row(10, ts=1_000), 0)
    assert [r[4] for r in first + second] == [10, 11, 12, 13, 14, 15]
    assert [r[0] for r in first + second] == [1_000, 1_010, 1_020, 1_021, 1_031, 1_041]
    assert (third[0], third[4]) == (1_042, 16)
    assert relocation.elapsed_ms(1_000) == 42


def test_collector_rows_get_deterministic_ids_and_na_rows_none_of_their_own() -> None:
    lines = [
        {"symbol": "BTCUSDT", "ts": "2025-12-16T13:41:38.698Z", "price": 87162, "size": 0.003},
        {"symbol": "ETHUSDT", "ts": "2025-12-16T13:41:38.699Z", "price": 2950.5, "size": 1e-05},
        {"symbol": "BTCUSDT", "ts": "2025-12-16T13:41:38.699Z", "price": 0, "size": 0},
        {"symbol": "BTCUSDT", "ts": "2025-12-16T13:41:38.700Z", "price": 87161.9, "size": 2},
    ]
    for _ in range(2):  # a fresh reader (a second replay) gives the same result
        rows = CollectorRows()
        parsed = [rows(orjson.dumps(line), 5) for line in lines]
        base = 1_765_892_498_698_000
        assert parsed[0] == (1765892498698, "BTCUSDT", "87162", "0.003", base, "buy", 5)
        assert parsed[1] == (1765892498699, "ETHUSDT", "2950.5", "0.00001", base, "buy", 5)
        assert parsed[2] == NonMarketPrint("BTCUSDT", base, "NA", 1765892498699)
        assert parsed[3] == (1765892498700, "BTCUSDT", "87161.9", "2", base + 1, "sell", 5)


def test_collector_values_convert_exactly() -> None:
    assert [decimal_text(v) for v in (87162, 87162.1, 0.003, 1e-05, 2950.25)] == [
        "87162", "87162.1", "0.003", "0.00001", "2950.25",
    ]  # fmt: skip
    assert parse_iso_ms("2025-12-16T13:41:38.698Z") == 1_765_892_498_698
    assert parse_iso_ms("2025-12-16T13:41:38.698+00:00") == 1_765_892_498_698
    assert parse_iso_ms("2025-12-16T13:41:38") == 1_765_892_498_000


def test_replay_formats_are_told_apart_by_the_first_line(tmp_path: Path) -> None:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    assert detect_format(write("a.ndjson", '{"symbol":"X","ts":"t","price":1,"size":1}\n')) == (
        "collector"
    )
    assert detect_format(write("b.ndjson", '\n{"e":"trade","s":"X"}\n')) == "frames"
    assert detect_format(write("c.ndjson", '{"stream":"x","data":{}}\n')) == "frames"
    assert detect_format(write("ETHUSDT-trades-2025-12-16.csv", "1,2,3,4,5,true\n")) == "csv"
    with pytest.raises(ReplayError, match="must be named like BTCUSDT-trades-"):
        detect_format(write("trades.csv", "id,price,qty,quote_qty,time,is_buyer_maker\n"))
    with pytest.raises(ReplayError, match="is empty"):
        detect_format(write("empty.ndjson", "\n\n"))
    with pytest.raises(ReplayError, match="not raw frames, collector NDJSON or a trades CSV"):
        detect_format(write("notes.txt", "hello\n"))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("binance_reconnect_max_s", "31", "BINANCE_RECONNECT_MAX_S='31': Input should be less"),
        ("binance_stale_timeout_s", "0", "BINANCE_STALE_TIMEOUT_S='0': Input should be greater"),
        ("binance_ws_url", "https://x", "BINANCE_WS_URL='https://x': expected a ws"),
        ("binance_rest_url", "wss://x", "BINANCE_REST_URL='wss://x': expected an http"),
        (
            "binance_rest_url",
            "https://x/fapi",
            "BINANCE_REST_URL='https://x/fapi': expected the host",
        ),
        ("binance_api_key", "not a key!", "BINANCE_API_KEY=<hidden>: expected letters and digits"),
        ("binance_rest_weight_per_min", "3000", "BINANCE_REST_WEIGHT_PER_MIN='3000': Input should"),
        ("ingest_queue_size", "10", "INGEST_QUEUE_SIZE='10': Input should be greater"),
        ("ingest_batch", "0", "INGEST_BATCH='0': Input should be greater"),
        ("synthetic_tick_rate", "-1", "SYNTHETIC_TICK_RATE='-1': Input should be greater"),
        ("replay_loop", "sometimes", "REPLAY_LOOP='sometimes': Input should be a valid boolean"),
    ],
)
def test_ingestor_settings_reject_bad_values_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable.upper(), value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_reconnect_base_above_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_RECONNECT_BASE_S", "20")
    monkeypatch.setenv("BINANCE_RECONNECT_MAX_S", "10")
    with pytest.raises(ConfigError, match=re.escape("BINANCE_RECONNECT_BASE_S=20.0 is above")):
        load_settings()


def test_a_tick_row_holds_the_tick_fields_in_their_order() -> None:
    assert TickRow._fields == TICK_FIELDS
