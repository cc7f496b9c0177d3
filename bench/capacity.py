"""Capacity search: the highest throughput whose p99 is within a budget, found in a few levels.

The host-side sweep runner measures levels through `measure(level)`; this module only decides which
level comes next and what the outcome means. Standard library only: it runs on the benchmark hosts.

1. Grow: levels 1, 2, 4, ... (doubling, capped at max_concurrency) until a level's p99 breaks the
   budget, a level cannot be measured, or throughput gains less than min_gain_percent over the best
   level so far (the curve has flattened: more load only adds queueing).
2. Narrow: when the budget was broken between the last good level `lo` and the bad one `hi`,
   bisect while the gap is wider than one level and than min_gain_percent of `lo` (below saturation
   throughput grows at most in proportion to the level, so a narrower gap cannot gain more).

The capacity is the best throughput among the measured levels within the budget. It is **valid**
when enough requests were measured at its level (bench.records.enough_requests: MLPerf LoadGen's
early-stopping bound for a 99th percentile); the budget met is in its definition, and perf_analyzer
reports only levels that met its stability rule (the others were retried with longer windows, then
recorded as unmeasurable). An invalid outcome keeps its numbers and says why; its record is
bench.records.CapacitySearch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.records import MIN_REQUESTS, CapacitySearch, Level, enough_requests

DEFAULT_MIN_GAIN_PERCENT = 5.0
DEFAULT_MAX_CONCURRENCY = 256


def most_levels(max_concurrency: int) -> int:
    """The most levels a search up to MAX_CONCURRENCY measures: the doublings, then a bisection of the
    last doubling's gap (what bounds the time a search may take)."""
    doublings = math.ceil(math.log2(max_concurrency)) + 1 if max_concurrency > 1 else 1
    return doublings + max(0, math.ceil(math.log2(max(max_concurrency // 2, 1))))


@dataclass
class Outcome:
    budget_ms: float
    levels: list[Level] = field(default_factory=list)
    unmeasured: list[int] = field(default_factory=list)
    stopped: str = ""
    error: str = ""

    def within(self) -> list[Level]:
        return [m for m in self.levels if m.p99_us <= self.budget_ms * 1000]

    @property
    def best(self) -> Level | None:
        fits = self.within()
        return max(fits, key=lambda m: (m.throughput, -m.level)) if fits else None

    @property
    def reason(self) -> str:
        """Why the capacity is invalid; empty when it is valid."""
        best = self.best
        if self.error:
            return f"search cut short: {self.error}"
        if not self.levels:
            return "no level could be measured"
        if best is None:
            first = min(self.levels, key=lambda m: m.level)
            return (
                f"no level within the budget: level {first.level} has p99 {first.p99_us / 1000:.1f} ms"
                f" > {self.budget_ms:g} ms"
            )
        if not enough_requests(best.requests):
            return f"too few requests for a p99 at level {best.level}: {best.requests} < {MIN_REQUESTS}"
        return ""

    def record(self, seconds: float | None = None) -> CapacitySearch:
        best = self.best
        return CapacitySearch(
            kind="capacity",
            p99_budget_ms=self.budget_ms,
            valid=not self.reason,
            reason=self.reason,
            capacity=best.throughput if best else None,
            level=best,
            curve=sorted(self.levels, key=lambda m: m.level),
            unmeasured=sorted(self.unmeasured),
            windows=sum(m.windows for m in self.levels),
            stopped=self.stopped,
            min_requests=MIN_REQUESTS,
            seconds=seconds,
        )


class SearchCut(Exception):
    """The measurement cannot go on (the server is gone): the search stops, keeping what it has."""


def search(
    measure: Callable[[int], Level | None],
    budget_ms: float,
    min_gain_percent: float = DEFAULT_MIN_GAIN_PERCENT,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> Outcome:
    """Grow then narrow; `measure` returns None for a level it could not stabilise and raises
    SearchCut when nothing more can be measured."""
    outcome = Outcome(budget_ms)
    gain = 1 + min_gain_percent / 100

    def fits(level: int) -> bool | None:
        measured = measure(level)
        if measured is None:
            outcome.unmeasured.append(level)
            return None
        outcome.levels.append(measured)
        return measured.p99_us <= budget_ms * 1000

    lo, hi, level = 0, 0, 1
    try:
        while True:
            before = outcome.best
            ok = fits(level)
            if not ok:
                hi = level
                outcome.stopped = f"level {level} {'could not be measured' if ok is None else 'broke the budget'}"
                break
            if before is not None and outcome.best.throughput < before.throughput * gain:
                outcome.stopped = f"level {level} gained less than {min_gain_percent:g} %"
                break
            lo = level
            if level >= max_concurrency:
                outcome.stopped = f"max_concurrency {max_concurrency} reached"
                break
            level = min(level * 2, max_concurrency)
        while lo and hi and hi - lo > 1 and (hi - lo) / lo > min_gain_percent / 100:
            mid = (lo + hi) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid
    except SearchCut as err:
        outcome.error = str(err)
        outcome.stopped = "the measurement was cut short"
    return outcome
