"""Ticks from the Redis streams into SQLite, exactly once."""

import sys

from services.writer import service
from shared.runtime import service_main

if __name__ == "__main__":
    sys.exit(service_main("writer", __doc__ or "", service.run))
