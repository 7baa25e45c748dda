"""Binance Futures trades to the ticks:<SYMBOL> streams (live, replayed or synthetic)."""

import functools
import sys
from collections.abc import Sequence
from pathlib import Path

from services.ingestor import service
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
    if args.record is not None and settings.source != "binance":
        print(f"{NAME}: --record needs SOURCE=binance, not {settings.source}", file=sys.stderr)
        return EXIT_CONFIG
    return run_service(NAME, settings, functools.partial(service.run, record=args.record))


if __name__ == "__main__":
    sys.exit(main())
