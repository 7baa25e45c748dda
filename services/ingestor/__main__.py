"""Binance Futures trades to the ticks:<SYMBOL> streams (live, replayed or synthetic)."""

import functools
import sys
from collections.abc import Sequence
from pathlib import Path

from services.ingestor import service
from services.ingestor.replay_formats import ReplayError, detect_format
from shared.config import Settings
from shared.runtime import (
    EXIT_CONFIG,
    check_health,
    run_service,
    service_parser,
    settings_or_exit,
)

NAME = "ingestor"


def main(argv: Sequence[str] | None = None) -> int:
    parser = service_parser(NAME, __doc__ or "")
    parser.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        help="also append every raw frame received to FILE (gzip if it ends in .gz); "
        "replay it later with SOURCE=replay REPLAY_FILE=FILE",
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit(NAME)
    if args.check:
        return check_health(NAME, settings)
    problem = _startup_problem(settings, args.record)
    if problem:
        print(f"{NAME}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    return run_service(NAME, settings, functools.partial(service.run, record=args.record))


def _startup_problem(settings: Settings, record: Path | None) -> str:
    """What keeps the ingestor from starting, in one line; empty when nothing does."""
    if record is not None:
        if settings.source != "binance":
            return f"--record needs SOURCE=binance, not {settings.source}"
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.open("ab").close()
        except OSError as exc:
            return f"--record {record}: {exc.strerror or exc}"
    if settings.source == "replay" and settings.replay_file is not None:
        try:
            detect_format(settings.replay_file)
        except ReplayError as exc:
            return f"REPLAY_FILE: {exc}"
    return ""


if __name__ == "__main__":
    sys.exit(main())
