"""`SOURCE=synthetic`: seeded, cointegrated trades, so the pipeline can be shown a known answer.

The symbols fall into groups (`SYNTHETIC_GROUPS`; by default one group of all). Each group's
second symbol (its first if it has one) is the group's driver B, a geometric random walk from
100 (volatility `DRIVER_VOLATILITY` per √second) of its own. Every other symbol X of the group
follows

    X = SYNTHETIC_HEDGE_RATIO * B + s_X
    ds_X = -SYNTHETIC_MEAN_REVERSION * s_X * dt + SYNTHETIC_NOISE * dW

an Ornstein-Uhlenbeck spread around zero, simulated exactly between trades. So inside a group,
X on B has hedge ratio `SYNTHETIC_HEDGE_RATIO`, intercept 0 and a stationary spread with
half-life ln 2 / `SYNTHETIC_MEAN_REVERSION` seconds, and any two symbols of a group are
cointegrated; symbols of different groups follow independent walks and are not. Trades arrive
as a Poisson process of `SYNTHETIC_TICK_RATE` per second over all symbols, each symbol equally
likely. The same seed gives the same trades (prices, sizes, sides, spacing); the times start
now, and trade ids are `1000 * (start epoch ms)` plus a per-symbol count, as for replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from services.ingestor.binance import TickRow
from services.ingestor.intake import Intake
from shared.config import Settings, section
from shared.health import now_ms

DRIVER_START = 100.0
DRIVER_VOLATILITY = 0.001
"""Per √second: about 30% a day, so a minute-scale window sees the hedge clearly."""
BLOCK = 1024


@dataclass(frozen=True)
class Market:
    """The settings `synthetic_<field>`, for `symbols`."""

    symbols: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    seed: int
    hedge_ratio: float
    mean_reversion: float
    noise: float
    tick_rate: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Market:
        return section(
            settings, "synthetic_", cls, symbols=settings.symbols, groups=settings.market_groups
        )

    @property
    def drivers(self) -> tuple[str, ...]:
        """Each group's driver."""
        return tuple(group[1] if len(group) > 1 else group[0] for group in self.groups)

    def describe(self) -> str:
        """The groups, each with its driver, as the start event and the log say them."""
        return " | ".join(
            f"{','.join(group)} on {driver}"
            for group, driver in zip(self.groups, self.drivers, strict=True)
        )

    def trades(self, start_ms: int) -> Iterator[TickRow]:
        """The endless, seeded sequence of trades, the first at `start_ms`; `recv_ts` is 0 until
        the source hands each over."""
        rng = np.random.default_rng(self.seed)
        symbols = self.symbols
        group_of = [next(g for g, group in enumerate(self.groups) if s in group) for s in symbols]
        is_driver = [s in self.drivers for s in symbols]
        theta, sigma = self.mean_reversion, self.noise
        log_b = [math.log(DRIVER_START)] * len(self.groups)
        spreads = [0.0] * len(symbols)
        next_id = [start_ms * 1000] * len(symbols)
        clock_ms = float(start_ms)
        first = True
        while True:
            gaps = rng.exponential(1000.0 / self.tick_rate, BLOCK)
            picks = rng.integers(0, len(symbols), BLOCK)
            walks = rng.standard_normal((BLOCK, len(self.groups)))
            shocks = rng.standard_normal((BLOCK, len(symbols)))
            sizes = rng.lognormal(-3.0, 1.0, BLOCK)
            sells = rng.random(BLOCK) < 0.5
            for i in range(BLOCK):
                dt = 0.0 if first else gaps[i] / 1000
                first = False
                clock_ms += dt * 1000
                step = DRIVER_VOLATILITY * math.sqrt(dt)
                for g in range(len(log_b)):
                    log_b[g] += step * walks[i, g]
                decay = math.exp(-theta * dt)
                spread_sd = sigma * math.sqrt((1 - decay * decay) / (2 * theta))
                for k in range(len(symbols)):
                    spreads[k] = spreads[k] * decay + spread_sd * shocks[i, k]
                k = int(picks[i])
                b = math.exp(log_b[group_of[k]])
                price = b if is_driver[k] else self.hedge_ratio * b + spreads[k]
                trade_id = next_id[k]
                next_id[k] += 1
                yield TickRow(
                    int(clock_ms), symbols[k], f"{max(price, 0.01):.2f}",
                    f"{max(sizes[i], 0.001):.3f}", trade_id, "sell" if sells[i] else "buy", 0,
                )  # fmt: skip


class SyntheticSource:
    """Plays `Market.trades` in real time."""

    def __init__(self, settings: Settings, intake: Intake, stop: asyncio.Event) -> None:
        self.market = Market.from_settings(settings)
        self.stop = stop
        self.ticks = 0
        self._intake = intake
        self._closed = False

    @property
    def started(self) -> bool:
        return True

    async def run(self) -> None:
        market = self.market
        self._intake.notices.event(
            "synthetic_started",
            f"seed={market.seed} hedge_ratio={market.hedge_ratio:g} of each symbol on its "
            f"group's driver: {market.describe()}, mean_reversion={market.mean_reversion:g}/s "
            f"noise={market.noise:g} rate={market.tick_rate:g}/s",
        )
        self._intake.source_flowing(True)
        start = now_ms()
        started = time.monotonic()
        try:
            for trade in market.trades(start):
                wait = started + (trade.ts - start) / 1000 - time.monotonic()
                if wait > 0.001:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), wait)
                if self._closed or self.stop.is_set():
                    return
                await self._intake.tick_waiting(trade._replace(recv_ts=now_ms()))
                self.ticks += 1
        finally:
            self._intake.source_flowing(False)

    async def close(self, why: str = "stopping") -> None:
        self._closed = True

    @property
    def problems(self) -> list[str]:
        return []

    def health_fields(self) -> dict[str, int | str]:
        return {}
