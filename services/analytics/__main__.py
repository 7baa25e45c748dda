"""Bars, pair statistics and alerts from the tick streams."""

import sys

from services.analytics import service
from shared.runtime import service_main

if __name__ == "__main__":
    sys.exit(service_main("analytics", __doc__ or "", service.run))
