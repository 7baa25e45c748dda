"""Binance Futures trades to the ticks:<SYMBOL> streams."""

import sys

from services.ingestor import service
from shared.runtime import service_main

if __name__ == "__main__":
    sys.exit(service_main("ingestor", __doc__ or "", service.run))
