"""Uploaded OHLC CSV: accepted layouts, and a message naming file, row and column for each fault."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from services.dashboard.upload import (
    UploadedFile,
    UploadedPair,
    UploadError,
    decode_contents,
    pair_from_files,
    parse_file,
)

HEADER = "time,symbol,open,high,low,close,volume\n"
ROWS = [
    "2025-12-16T13:41:00Z,BTCUSDT,87100,87120,87090,87110,1.5",
    "2025-12-16T13:41:00Z,ETHUSDT,2940,2941,2939,2940.5,12",
    "2025-12-16T13:42:00Z,BTCUSDT,87110,87150,87100,87140,2.25",
    "2025-12-16T13:42:00Z,ETHUSDT,2940.5,2942,2940,2941.75,9",
    "2025-12-16T13:43:00Z,BTCUSDT,87140,87160,87120,87130,0.5",
    "2025-12-16T13:43:00Z,ETHUSDT,2941.75,2942,2941,2941.25,4",
    "2025-12-16T13:44:00Z,BTCUSDT,87130,87135,87080,87090,3",
    "2025-12-16T13:44:00Z,ETHUSDT,2941.25,2941.5,2939,2939.5,20",
]


def csv(rows: list[str], header: str = HEADER, name: str = "pair.csv") -> UploadedFile:
    return UploadedFile(name, (header + "\n".join(rows) + "\n").encode())


def fails(file: UploadedFile | list[UploadedFile], message: str) -> None:
    files = file if isinstance(file, list) else [file]
    with pytest.raises(UploadError) as caught:
        pair_from_files(files)
    assert message in str(caught.value), str(caught.value)


def test_one_file_with_two_symbols_is_aligned_in_time_order() -> None:
    shuffled = [ROWS[i] for i in (7, 0, 3, 2, 5, 4, 1, 6)]
    pair = pair_from_files([csv(shuffled)])
    assert (pair.a.symbol, pair.b.symbol) == ("ETHUSDT", "BTCUSDT")
    assert pair.rows == 4 and pair.tf_ms == 60_000 and pair.dropped == 0
    assert list(np.diff(pair.a.time)) == [60_000] * 3
    assert list(pair.b.close) == [87110, 87140, 87130, 87090]
    assert list(pair.a.volume) == [12, 9, 4, 20]


def test_one_file_per_symbol_takes_the_symbol_from_the_file_name() -> None:
    header = "Timestamp,Open,High,Low,Close,Volume\n"
    btc = [r.replace(",BTCUSDT", "") for r in ROWS if "BTC" in r]
    eth = [r.replace(",ETHUSDT", "") for r in ROWS if "ETH" in r]
    pair = pair_from_files([csv(btc, header, "btcusdt_1m.csv"), csv(eth, header, "ETHUSDT.csv")])
    assert (pair.a.symbol, pair.b.symbol, pair.rows) == ("BTCUSDT", "ETHUSDT", 4)
    assert pair.files == ("btcusdt_1m.csv", "ETHUSDT.csv")


def test_epoch_times_in_seconds_milliseconds_microseconds_or_nanoseconds() -> None:
    for scale in (1, 1000, 1_000_000, 1_000_000_000):
        rows = [
            f"{(1_765_892_460 + 60 * (i // 2)) * scale},{'BTCUSDT' if i % 2 == 0 else 'ETHUSDT'},"
            "10,11,9,10.5,1"
            for i in range(6)
        ]
        pair = pair_from_files([csv(rows)])
        assert pair.a.time[0] == 1_765_892_460_000 and pair.tf_ms == 60_000


def test_bars_without_a_partner_are_counted_and_left_out() -> None:
    pair = pair_from_files([csv([*ROWS, "2025-12-16T13:45:00Z,BTCUSDT,1,1,1,1,1"])])
    assert pair.rows == 4 and pair.dropped == 1


def test_round_trip_through_the_stored_form() -> None:
    pair = pair_from_files([csv(ROWS)])
    back = UploadedPair.from_bytes(pair.to_bytes())
    assert back.files == pair.files and back.tf_ms == pair.tf_ms
    for name in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(back.a, name), getattr(pair.a, name))
        assert np.array_equal(getattr(back.b, name), getattr(pair.b, name))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2025-12-16T13:45:00Z,BTCUSDT,87100,abc,87090,87110,1",
         "pair.csv row 9 (line 10), column 'high': 'abc' is not a number"),
        ("2025-12-16T13:45:00Z,BTCUSDT,87100,87120,87090,,1",
         "pair.csv row 9 (line 10), column 'close': is empty"),
        ("2025-12-16T13:45:00Z,BTCUSDT,87100,87120,87090,87110,-1",
         "row 9 (line 10), column 'volume': -1 is below 0"),
        ("2025-12-16T13:45:00Z,BTCUSDT,87100,87080,87090,87100,1",
         "row 9 (line 10), column 'high': 87080 is below the low"),
        ("2025-12-16T13:45:00Z,BTCUSDT,87100,87105,87090,87110,1",
         "row 9 (line 10), column 'high': 87105 is below the open or close"),
        ("2025-12-16T13:45:00Z,BTCUSDT,0,87105,87090,87100,1",
         "row 9 (line 10), column 'open': 0 is not a positive price"),
        ("yesterday,BTCUSDT,87100,87120,87090,87110,1",
         "row 9 (line 10), column 'time': 'yesterday' is not a time"),
        ("2025-12-16T13:45:00Z,BTC USDT,87100,87120,87090,87110,1",
         "row 9 (line 10), column 'symbol': 'BTC USDT' is not a symbol"),
        ("2025-12-16T13:41:00Z,BTCUSDT,87100,87120,87090,87110,1",
         "row 9 (line 10), column 'time': BTCUSDT already has a bar at this time (row 1)"),
        ("2025-12-16T13:45:00Z,BTCUSDT,87100,87120,87090,87110,1,7",
         "pair.csv line 10: 8 fields where the header has 7"),
        ("2025-12-16T13:45:00Z,BTCUSDT,nan,87120,87090,87110,1",
         "column 'open': 'nan' is not a number"),
    ],
)  # fmt: skip
def test_a_malformed_row_is_named_by_row_and_column(row: str, message: str) -> None:
    fails(csv([*ROWS, row]), message)


def test_file_level_faults() -> None:
    fails(UploadedFile("a.csv", b""), "a.csv is empty")
    fails(UploadedFile("a.csv", b"   \n"), "a.csv is empty")
    fails(csv([]), "pair.csv has a header but no rows")
    fails(UploadedFile("a.csv", b"time,open\n1,2\n"), "a.csv: missing column(s) high, low, close")
    fails(UploadedFile("a.csv", b"time,close,close\n1,2,3\n"), "column(s) close appear twice")
    fails(UploadedFile("a.xlsx", b"PK\x03\x04\xff\xfe binary"), "a.xlsx line 1: not UTF-8 text")
    fails(csv([r for r in ROWS if "BTC" in r]), "exactly two symbols; the upload has 1 (BTCUSDT)")
    fails(
        csv([*ROWS, "2025-12-16T13:41:00Z,SOLUSDT,1,1,1,1,1"]),
        "the upload has 3 (BTCUSDT, ETHUSDT, SOLUSDT)",
    )
    no_symbol = "time,open,high,low,close,volume\n2025-12-16,1,1,1,1,1\n"
    fails(UploadedFile("data.csv", no_symbol.encode()), "has 1 (DATA from the file name data.csv)")
    fails(UploadedFile("-.csv", no_symbol.encode()), "does not start with a symbol")
    fails([csv(ROWS), csv(ROWS, name="again.csv")], "again.csv: BTCUSDT is also in another")
    apart = [r.replace("2025-12-16", "2025-12-17") if "ETH" in r else r for r in ROWS]
    fails(csv(apart), "have only 0 bar time(s) in common")
    fails([], "no file was uploaded")


def test_blank_lines_before_the_header_and_between_rows_are_skipped() -> None:
    pair = pair_from_files([csv(ROWS, header="\n  \n" + HEADER)])
    assert (pair.a.symbol, pair.b.symbol, pair.rows) == ("BTCUSDT", "ETHUSDT", 4)
    text = "\r\n" + HEADER + "\n".join(ROWS[:4]) + "\n\n" + "\n".join(ROWS[4:]) + "\n"
    assert pair_from_files([UploadedFile("gaps.csv", text.encode())]).rows == 4
    # Messages still name the row, and the line it is really on.
    bad = [*ROWS[:4], "", ROWS[4].replace("87140,87160", "87140,x")]
    fails(csv(bad, header="\n" + HEADER), "pair.csv row 5 (line 8), column 'high': 'x' is not")
    fails(
        csv([*ROWS, "2025-12-16T13:45:00Z,BTCUSDT,1,1,1,1,1,7"], header="\n" + HEADER),
        "pair.csv line 11: 8 fields where the header has 7",
    )


@pytest.mark.parametrize(
    ("time", "message"),
    [
        ("inf", "row 9 (line 10), column 'time': 'inf' is not a time"),
        ("-Infinity", "row 9 (line 10), column 'time': '-Infinity' is not a time"),
        ("nan", "row 9 (line 10), column 'time': 'nan' is not a time"),
        ("1e400", "row 9 (line 10), column 'time': '1e400' is not between 1970-01-01 and 2100"),
        ("-1765892760", "'-1765892760' is not between 1970-01-01 and 2100-01-01 (read as epoch s"),
        ("9999999999", "'9999999999' is not between 1970-01-01 and 2100-01-01 (read as epoch s"),
        ("1765892760000", "'1765892760000' is not between 1970-01-01 and 2100-01-01 (read as"),
    ],
)  # fmt: skip
def test_epoch_times_must_be_finite_and_between_1970_and_2100(time: str, message: str) -> None:
    rows = [
        f"{1_765_892_460 + 60 * (i // 2)},{'BTCUSDT' if i % 2 == 0 else 'ETHUSDT'},10,11,9,10.5,1"
        for i in range(8)
    ]
    fails(csv([*rows, f"{time},BTCUSDT,10,11,9,10.5,1"]), message)


@pytest.mark.parametrize("time", ["2100-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01"])
def test_iso_times_must_be_between_1970_and_2100(time: str) -> None:
    fails(
        csv([*ROWS, f"{time},BTCUSDT,87100,87120,87090,87110,1"]),
        f"row 9 (line 10), column 'time': '{time}' is not between 1970-01-01 and 2100-01-01",
    )


def test_nanosecond_times_are_not_taken_for_microseconds() -> None:
    rows = [
        f"{(1_765_892_460_000 + 60_000 * (i // 2)) * 1_000_000 + 123_456},"
        f"{'BTCUSDT' if i % 2 == 0 else 'ETHUSDT'},10,11,9,10.5,1"
        for i in range(6)
    ]
    pair = pair_from_files([csv(rows)])
    assert pair.a.time.tolist() == [1_765_892_460_000, 1_765_892_520_000, 1_765_892_580_000]


def test_mixed_time_formats_are_refused() -> None:
    rows = [*ROWS[:2], ROWS[2].replace("2025-12-16T13:42:00Z", "1765892520000")]
    with pytest.raises(
        UploadError, match=r"row 3 \(line 4\), column .time.: .1765892520000. is not in"
    ):
        parse_file(csv(rows))


def _data_url(payload: bytes) -> str:
    return "data:text/csv;base64," + base64.b64encode(payload).decode()


def test_decode_contents_checks_the_size_before_decoding() -> None:
    assert decode_contents("a.csv", _data_url(b"time\n"), 100).data == b"time\n"
    with pytest.raises(UploadError, match=r"big.csv is 0.0 MB; files over 0 MB are refused"):
        decode_contents("big.csv", _data_url(b"x" * 101), 100)
    with pytest.raises(UploadError, match="could not be decoded"):
        decode_contents("a.csv", "data:text/csv;base64,@@@", 100)
    with pytest.raises(UploadError, match="something other than a file"):
        decode_contents("a.csv", "hello", 100)


def test_the_size_message_names_the_limit_in_megabytes() -> None:
    limit = 50 * 1_048_576
    oversized = "data:text/csv;base64," + "A" * (limit // 3 * 4 + 8)
    with pytest.raises(UploadError, match=r"big.csv is 50.0 MB; files over 50 MB are refused"):
        decode_contents("big.csv", oversized, limit)
