"""The functional core does no I/O: a pure module imports, directly or through the repo's other
modules, none of the libraries that talk to Redis, SQLite, the network or the disk."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from testkit.processes import REPO

IO_LIBRARIES = frozenset(
    {"redis", "hiredis", "sqlite3", "aiohttp", "websockets", "waitress", "socket", "asyncpg"}
)
TYPES_ONLY = frozenset({"redis.typing"})
"""Type aliases of an I/O library: importing them does no I/O."""
PURE = (
    "shared.keys", "shared.schemas", "shared.health", "shared.pairstats", "shared.alert_rules",
    "shared.views", "shared.times", "shared.streamids", "shared.bargrid",
    "services.ingestor.binance", "services.ingestor.routes", "services.ingestor.silence",
    "services.ingestor.gaps", "services.ingestor.backfill", "services.ingestor.rest_records",
    "services.ingestor.replay_formats", "services.ingestor.state",
    "services.analytics.clock", "services.analytics.bars", "services.analytics.series",
    "services.analytics.pairs", "services.analytics.alerts", "services.analytics.views",
    "services.analytics.engine", "services.analytics.outputs", "services.analytics.ticks",
    "services.dashboard.controller", "services.dashboard.rules", "services.dashboard.selection",
    "services.dashboard.cursor", "services.dashboard.status", "services.dashboard.display",
    "services.dashboard.figures", "services.dashboard.panels", "services.dashboard.layout",
    "services.dashboard.controls", "services.dashboard.forms", "services.dashboard.formatting",
    "services.dashboard.export", "services.dashboard.records", "services.dashboard.upload",
    "services.dashboard.analysis", "services.dashboard.ids", "services.dashboard.warmup",
)  # fmt: skip


def _path(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(module: str) -> frozenset[str]:
    """The modules `module` imports at its top level and in its functions (not under
    TYPE_CHECKING, which never runs)."""
    path = _path(module)
    if path is None:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(found)


def _reach(module: str) -> dict[str, str]:
    """Every module `module` reaches through imports, each with the repo module importing it."""
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        for name in _imports(current):
            if name not in seen:
                seen[name] = current
                if _path(name) is not None:
                    todo.append(name)
    return seen


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_reaches_no_io_library(module: str) -> None:
    assert _path(module) is not None, f"{module} is listed as pure but does not exist"
    reached = _reach(module)
    io = {
        name: by
        for name, by in reached.items()
        if name.split(".")[0] in IO_LIBRARIES
        and not any(name == t or name.startswith(f"{t}.") for t in TYPES_ONLY)
    }
    assert io == {}, f"{module} reaches I/O: " + ", ".join(f"{n} (in {b})" for n, b in io.items())
