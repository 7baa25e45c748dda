"""Waiting for a condition: one rule for tests and benchmarks, blocking or in an event loop.

Both forms check `predicate` at once, then every `interval` seconds, and give up after `within`
seconds, returning whether it held: callers `assert` the result, so a failure names the
condition. The async form accepts a predicate that returns an awaitable.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

WITHIN_S = 20.0
"""How long a condition may take before the wait fails: generous, since a wait that succeeds
returns as soon as the condition holds."""
INTERVAL_S = 0.02


def wait_until(
    predicate: Callable[[], object], within: float = WITHIN_S, interval: float = INTERVAL_S
) -> bool:
    """Block until `predicate()` is truthy (True) or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], object | Awaitable[object]],
    within: float = WITHIN_S,
    interval: float = INTERVAL_S,
) -> bool:
    """Await until `predicate()` (sync or async) is truthy (True) or `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
