"""`python -m services.ingestor`: Binance Futures trades to the ticks:<SYMBOL> streams."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.ingestor import service
from shared import runtime

NAME = "ingestor"


def main(argv: Sequence[str] | None = None) -> int:
    parser = runtime.service_parser(NAME, "Binance Futures trades to the ticks:<SYMBOL> streams.")
    args = parser.parse_args(argv)
    settings = runtime.settings_or_exit(NAME)
    if args.check:
        return runtime.check_health(NAME, settings)
    return runtime.run_service(NAME, settings, service.run)


if __name__ == "__main__":
    sys.exit(main())
