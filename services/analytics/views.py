"""Which pair views to serve: the defaults, the ones users asked for, the ones alert rules watch.

Users add a view id to the `analytics-views` sorted set with an expiry (epoch ms) and renew it
while they look; the worker serves every unexpired one. A view id that is malformed, names a
symbol outside `SYMBOLS` or a timeframe outside `TIMEFRAMES`, or goes beyond `MAX_VIEWS`, is
reported once and ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shared.views import PairView


class ViewRegistry:
    def __init__(
        self,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        defaults: Iterable[PairView],
        max_views: int,
    ) -> None:
        self.symbols = set(symbols)
        self.timeframes = set(timeframes)
        self.defaults = {view.id: view for view in defaults}
        self.max_views = max_views
        self._reported: set[str] = set()
        """Members reported as not served; forgotten when they leave the set (bounded)."""

    def _problem(self, member: str, problem: str, problems: list[str]) -> None:
        if member not in self._reported:
            self._reported.add(member)
            problems.append(f"view {member!r} not served: {problem}")

    def requested(self, members: Iterable[str]) -> tuple[list[PairView], list[str]]:
        """The servable views among `members` (beyond the defaults) and new problems."""
        views: list[PairView] = []
        problems: list[str] = []
        seen: set[str] = set()
        members = list(members)
        self._reported &= set(members)
        for member in members:
            try:
                view = PairView.parse(member)
            except ValueError as exc:
                self._problem(member, str(exc), problems)
                continue
            unknown = [s for s in (view.a, view.b) if s not in self.symbols]
            if unknown:
                self._problem(member, f"{', '.join(unknown)} is not in SYMBOLS", problems)
                continue
            if view.tf not in self.timeframes:
                self._problem(member, f"{view.tf} is not in TIMEFRAMES", problems)
                continue
            if view.id in self.defaults or view.id in seen:
                continue
            if len(views) >= self.max_views:
                self._problem(member, f"MAX_VIEWS={self.max_views} views are served", problems)
                continue
            seen.add(view.id)
            views.append(view)
        return views, problems
