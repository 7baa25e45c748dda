"""`python -m bench [NAME ...]`: run the benchmarks, print their tables, save JSON results.

Each module `bench/bench_<name>.py` has `run() -> dict`; the result goes to
`bench/results/<name>.json` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    args = parser.parse_args()
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have {available()}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        result = {"benchmark": name, "machine": machine(), **module.run()}
        (RESULTS / f"{name}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(f"   saved bench/results/{name}.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
