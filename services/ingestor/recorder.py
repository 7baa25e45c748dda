"""`--record FILE`: every raw frame the live source receives, one per line (gzip for `.gz`).

The file replays with `SOURCE=replay REPLAY_FILE=FILE`: same frames, same parser, same ids.
Frames are JSON text, so a line break inside one can only be insignificant whitespace; it is
replaced by a space to keep one frame per line.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def _open(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, "ab")  # type: ignore[return-value]
    return path.open("ab")


class Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames = 0
        self._file = _open(path)
        log.info("recording raw frames", extra={"file": str(path)})

    def write(self, raw: bytes) -> None:
        if b"\n" in raw or b"\r" in raw:
            raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
        self._file.write(raw)
        self._file.write(b"\n")
        self.frames += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            log.info("recording closed", extra={"file": str(self.path), "frames": self.frames})
