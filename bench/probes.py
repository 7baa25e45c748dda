"""Probes that time a running pipeline from outside, each in a thread of its own.

Every time is `time.perf_counter()` (CLOCK_MONOTONIC), comparable with the send times the feed
process records. The Redis probes read raw sockets through hiredis and stamp a reply when its
first bytes arrive, not when Python gets round to parsing it.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
import numpy as np
import numpy.typing as npt

from shared import keys
from shared.schemas import TICK_FIELDS

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
TS_AT = 2 * TICK_FIELDS.index("ts") + 1
ID_AT = 2 * TICK_FIELDS.index("trade_id") + 1
"""Where a tick's trade time and id sit in an entry's flat field list (the publisher's order)."""


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command_bytes(*args: str | bytes) -> bytes:
    """One command in Redis' wire format."""
    parts = [a if isinstance(a, bytes) else a.encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


class _Probe:
    """A daemon thread running `_loop` until `stop()`."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._running.set()
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        self._thread.join(10)

    def _loop(self) -> None:
        raise NotImplementedError


class KeyspaceWatcher(_Probe):
    """Keyspace notifications of one event (`hset`) on the keys matching `pattern`, timed as
    their bytes arrive. With `read_field`, the field's value is read right after each one (on
    a second connection), so each arrival says what the key then held."""

    def __init__(
        self, port: int, pattern: str, event: bytes = b"hset", read_field: str | None = None
    ) -> None:
        super().__init__()
        self.port = port
        self.event = event
        self.read_field = read_field
        self.arrivals: list[tuple[float, str, str | None]] = []
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.sendall(command_bytes("PSUBSCRIBE", f"__keyspace@0__:{pattern}"))
        self._sock.settimeout(0.1)

    def _loop(self) -> None:
        reader = hiredis.Reader()
        lookup = _Lookup(self.port) if self.read_field is not None else None
        while self._running.is_set():
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            at = time.perf_counter()
            reader.feed(chunk)
            while (message := reader.gets()) is not False:
                if isinstance(message, list) and message[0] == b"pmessage":
                    if message[3] == self.event:
                        key = message[2].decode().split(":", 1)[1]
                        value = None
                        if lookup is not None and self.read_field is not None:
                            value = lookup.hget(key, self.read_field)
                        self.arrivals.append((at, key, value))
        self._sock.close()
        if lookup is not None:
            lookup.close()


class _Lookup:
    """Blocking HGETs on a raw connection of its own."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.reader = hiredis.Reader()

    def hget(self, key: str, name: str) -> str | None:
        self.sock.sendall(command_bytes("HGET", key, name))
        while (reply := self.reader.gets()) is False:
            self.reader.feed(self.sock.recv(1 << 16))
        return reply.decode() if isinstance(reply, bytes) else None

    def close(self) -> None:
        self.sock.close()


@dataclass
class Arrived:
    """The entries of one tick stream as they became visible: one row per entry."""

    at: list[float] = field(default_factory=list)
    trade_id: list[bytes] = field(default_factory=list)
    ts: list[bytes] = field(default_factory=list)

    def arrays(self) -> tuple[Floats, Ints, Ints]:
        """(arrival times, trade ids, trade times) as arrays, in stream order."""
        return (
            np.asarray(self.at, dtype=np.float64),
            np.asarray([int(i) for i in self.trade_id], dtype=np.int64),
            np.asarray([int(t) for t in self.ts], dtype=np.int64),
        )


class StreamArrivals(_Probe):
    """`XREAD BLOCK` on every `ticks:<SYMBOL>` stream from the start: when each entry became
    visible in Redis, with its trade id and trade time."""

    BLOCK_MS = 100

    def __init__(self, port: int, symbols: Sequence[str]) -> None:
        super().__init__()
        self.streams = [keys.ticks(s).encode() for s in symbols]
        self.symbol_of = {keys.ticks(s).encode(): s for s in symbols}
        self.arrived = {s: Arrived() for s in symbols}
        self._last = dict.fromkeys(self.streams, b"0-0")
        self._sock = socket.create_connection(("127.0.0.1", port))

    def _request(self) -> bytes:
        return command_bytes(
            "XREAD", "COUNT", "10000", "BLOCK", str(self.BLOCK_MS), "STREAMS",
            *self.streams, *(self._last[s] for s in self.streams),
        )  # fmt: skip

    def _loop(self) -> None:
        reader = hiredis.Reader()
        while self._running.is_set():
            self._sock.sendall(self._request())
            at = None
            while (reply := reader.gets()) is False:
                chunk = self._sock.recv(1 << 20)
                if at is None:
                    at = time.perf_counter()
                reader.feed(chunk)
            if reply and at is not None:
                self._take(at, reply)
        self._sock.close()

    def _take(self, at: float, reply: Any) -> None:
        for stream, entries in reply:
            arrived = self.arrived[self.symbol_of[stream]]
            arrived.at.extend([at] * len(entries))
            arrived.trade_id.extend(fields[ID_AT] for _, fields in entries)
            arrived.ts.extend(fields[TS_AT] for _, fields in entries)
            self._last[stream] = entries[-1][0]


class SqlitePoller(_Probe):
    """Every `interval_s`, the newest trade id SQLite holds per symbol (the writer commits each
    symbol's ticks in id order, so this says which ticks are in)."""

    def __init__(self, path: Path, symbols: Sequence[str], interval_s: float = 0.005) -> None:
        super().__init__()
        self.path = path
        self.symbols = list(symbols)
        self.interval_s = interval_s
        self.polls: list[tuple[float, list[int]]] = []

    def _loop(self) -> None:
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        query = "SELECT coalesce(max(trade_id), 0) FROM ticks WHERE symbol = ?"
        while self._running.is_set():
            newest = [int(conn.execute(query, (s,)).fetchone()[0]) for s in self.symbols]
            self.polls.append((time.perf_counter(), newest))
            time.sleep(self.interval_s)
        conn.close()

    def series(self, symbol: str) -> tuple[Floats, Ints]:
        """(poll times, newest id stored) for `symbol`."""
        column = self.symbols.index(symbol)
        times = np.asarray([t for t, _ in self.polls], dtype=np.float64)
        newest = np.asarray([n[column] for _, n in self.polls], dtype=np.int64)
        return times, np.maximum.accumulate(newest) if len(newest) else newest
