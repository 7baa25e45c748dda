"""`python -m services.writer [--check] | export ... | stats ...`: the service and its tools.

The subcommands read the tick database and never touch Redis. Their modules import pandas, so
they are imported only when asked for: the service and `--check` start without it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.runtime import check_health, run_service, service_parser, settings_or_exit

DESCRIPTION = (
    "Every tick from the Redis streams into SQLite exactly once. Without a subcommand, run the "
    "service; `export` writes ticks or bars as CSV, `stats` describes what the database holds."
)
TIME_HELP = "ISO-8601 (UTC unless an offset is given, e.g. 2025-12-16T13:00:00Z) or epoch ms"


def build_parser() -> argparse.ArgumentParser:
    parser = service_parser("writer", DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="{export,stats}")

    export = commands.add_parser(
        "export",
        help="write the ticks (or bars with --tf) of a symbol in a time range as CSV",
        description="Write ticks, or bars with --tf, as CSV with a header row and ISO-8601 UTC "
        "times. Prices and sizes of ticks are the exchange's exact decimals.",
    )
    export.add_argument("--symbol", required=True, help="a symbol stored, like BTCUSDT")
    export.add_argument("--start", help=f"first time included ({TIME_HELP}); default: the first")
    export.add_argument("--end", help=f"first time excluded ({TIME_HELP}); default: after the last")
    export.add_argument("--tf", help="bars of this timeframe (1s ... 1d) instead of ticks")
    export.add_argument("--out", required=True, help="CSV file to write, or - for stdout")
    export.add_argument("--db", type=Path, help="tick database (default: SQLITE_PATH)")
    export.add_argument("--quiet", action="store_true", help="no progress bar")

    stats = commands.add_parser(
        "stats",
        help="rows, time span and gaps per symbol",
        description="For each symbol stored: rows, first and last trade, missing trade ids, "
        "and stretches without any trade longer than --gap.",
    )
    stats.add_argument("--symbol", action="append", help="only this symbol (repeatable)")
    stats.add_argument("--gap", default="60s", help="report quiet stretches longer than this")
    stats.add_argument(
        "--top",
        type=int,
        default=10,
        help="list at most this many quiet stretches and missing id runs per symbol",
    )
    stats.add_argument("--db", type=Path, help="tick database (default: SQLITE_PATH)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command and args.check:
        parser.error("--check runs without a subcommand")
    settings = settings_or_exit("writer")
    if args.command is None:
        if args.check:
            return check_health("writer", settings)
        from services.writer import service

        return run_service("writer", settings, service.run)
    from services.writer import tools

    db = args.db or settings.sqlite_path
    try:
        if args.command == "export":
            return tools.export(args, db)
        return tools.stats(args, db)
    except tools.ToolError as exc:
        print(f"writer {args.command}: {exc}", file=sys.stderr)
        return exc.code
