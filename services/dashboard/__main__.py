"""The live Dash dashboard on DASH_HOST:DASH_PORT."""

import sys

from services.dashboard import server
from shared.runtime import service_main

if __name__ == "__main__":
    sys.exit(service_main("dashboard", __doc__ or "", server.run))
