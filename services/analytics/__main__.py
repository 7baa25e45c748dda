"""`python -m services.analytics`: Bars, pair statistics and alerts from the tick streams."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.analytics import service
from shared import runtime

NAME = "analytics"


def main(argv: Sequence[str] | None = None) -> int:
    parser = runtime.service_parser(NAME, "Bars, pair statistics and alerts from the tick streams.")
    args = parser.parse_args(argv)
    settings = runtime.settings_or_exit(NAME)
    if args.check:
        return runtime.check_health(NAME, settings)
    return runtime.run_service(NAME, settings, service.run)


if __name__ == "__main__":
    sys.exit(main())
