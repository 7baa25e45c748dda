"""The recent closes of every symbol at one timeframe, aligned bar by bar, for the pair windows.

One row per symbol, one column per closed interval. Every symbol that has traded gets a close in
every interval (a carried close when it did not trade), so the last `n` columns of two rows are
`n` aligned bars. `count[s]` is how many trailing columns of row `s` hold closes (a symbol that
never traded has none).

Appending is amortized O(symbols): the buffer is twice the capacity wide and is compacted when
full. A view with a larger window grows the capacity; older closes loaded from history are put in
front of a row's closes (`backfill`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.pairstats import FloatArray


class CloseMatrix:
    def __init__(self, n_symbols: int, capacity: int, tf_ms: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.n_symbols = n_symbols
        self.capacity = capacity
        self.tf_ms = tf_ms
        self._buffer: FloatArray = np.full((n_symbols, 2 * capacity), np.nan)
        self._end = capacity
        self.count: npt.NDArray[np.int64] = np.zeros(n_symbols, dtype=np.int64)
        self.last_start: int | None = None

    def append(self, start: int, closes: Sequence[float | None]) -> None:
        """The closes of one interval (None for a symbol that has not traded yet)."""
        if self._end == self._buffer.shape[1]:
            self._buffer[:, : self.capacity] = self._buffer[:, self.capacity :]
            self._buffer[:, self.capacity :] = np.nan
            self._end = self.capacity
        column = np.array([np.nan if c is None else c for c in closes], dtype=np.float64)
        self._buffer[:, self._end] = column
        self._end += 1
        valid = ~np.isnan(column)
        self.count = np.where(valid, np.minimum(self.count + 1, self.capacity), 0)
        self.last_start = start

    def window(self, symbols: npt.NDArray[np.intp], n: int) -> FloatArray:
        """The last `n` closes of each of `symbols`, one row each (a copy)."""
        return self._buffer[symbols, self._end - n : self._end]

    def row(self, symbol: int, n: int) -> FloatArray:
        """The last `n` closes of one symbol (a copy)."""
        return self._buffer[symbol, self._end - n : self._end].copy()

    def oldest_start(self, symbol: int) -> int | None:
        """Start of the oldest close held for `symbol`."""
        if self.last_start is None or not self.count[symbol]:
            return None
        return self.last_start - (int(self.count[symbol]) - 1) * self.tf_ms

    def grow(self, capacity: int) -> None:
        """Hold up to `capacity` closes per symbol (never shrinks)."""
        if capacity <= self.capacity:
            return
        buffer: FloatArray = np.full((self.n_symbols, 2 * capacity), np.nan)
        buffer[:, capacity - self.capacity : capacity] = self._buffer[
            :, self._end - self.capacity : self._end
        ]
        self._buffer, self._end, self.capacity = buffer, capacity, capacity

    def backfill(self, symbol: int, older: Sequence[float]) -> int:
        """Put closes older than those held (oldest first, ending just before them) in front.

        Returns how many were taken (as many as the capacity leaves room for).
        """
        held = int(self.count[symbol])
        if not held:
            return 0
        room = self.capacity - held
        taken = min(room, len(older))
        if taken <= 0:
            return 0
        right = self._end - held
        self._buffer[symbol, right - taken : right] = np.asarray(older[-taken:], dtype=np.float64)
        self.count[symbol] = held + taken
        return taken
