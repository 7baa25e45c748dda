"""Ticks from the Redis streams into SQLite, exactly once; `export` and `stats` subcommands."""

import sys

from services.writer import cli

if __name__ == "__main__":
    sys.exit(cli.main())
