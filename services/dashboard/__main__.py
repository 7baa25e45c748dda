"""`python -m services.dashboard`: the live Dash dashboard on DASH_HOST:DASH_PORT."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.dashboard import server
from shared import runtime

NAME = "dashboard"


def main(argv: Sequence[str] | None = None) -> int:
    parser = runtime.service_parser(NAME, "The live Dash dashboard on DASH_HOST:DASH_PORT.")
    args = parser.parse_args(argv)
    settings = runtime.settings_or_exit(NAME)
    if args.check:
        return runtime.check_health(NAME, settings)
    return runtime.run_service(NAME, settings, server.run)


if __name__ == "__main__":
    sys.exit(main())
