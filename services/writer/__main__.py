"""`python -m services.writer`: Ticks from the Redis streams into SQLite, exactly once."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.writer import service
from shared import runtime

NAME = "writer"


def main(argv: Sequence[str] | None = None) -> int:
    parser = runtime.service_parser(NAME, "Ticks from the Redis streams into SQLite, exactly once.")
    args = parser.parse_args(argv)
    settings = runtime.settings_or_exit(NAME)
    if args.check:
        return runtime.check_health(NAME, settings)
    return runtime.run_service(NAME, settings, service.run)


if __name__ == "__main__":
    sys.exit(main())
