"""Capacity search: the highest throughput whose p99 is within a budget, found in a few levels.

The host-side sweep runner measures levels through `measure(level)`; this module only decides which
level comes next and what the outcome means. Standard library only: it runs on the benchmark hosts.

1. Grow: levels 1, 2, 4, ... (doubling, capped at max_concurrency) until a level's p99 breaks the
   budget, a level cannot be measured, or throughput gains less than min_gain_percent over the best
   level so far (the curve has flattened: more load only adds queueing).
2. Narrow: when the budget was broken between the last good level `lo` and the bad one `hi`,
   bisect while the gap is wider than one level and than min_gain_percent of `lo` (below saturation
   throughput grows at most in proportion to the level, so a narrower gap cannot gain more).

An open loop (`load: poisson`, bench.capacity_run) searches the request rate the same way, from
start_rate doubling up to max_rate, bisecting to min_gain_percent of the rate (`search_rate`). A level
the client could not send on schedule (`Level.late`) is never a capacity: it stops the growth, and the
capacity found below it is only a lower bound, recorded invalid and why.

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
from typing import TypeVar

from bench.records import (
    MAX_DELAYED_PERCENT,
    MIN_REQUESTS,
    CapacitySearch,
    Level,
    Verdict,
    curve_verdict,
    enough_requests,
    rate_tolerance,
)

T = TypeVar("T", int, float)
DEFAULT_MIN_GAIN_PERCENT = 5.0
DEFAULT_MAX_CONCURRENCY = 256
DEFAULT_START_RATE = 1.0
DEFAULT_MAX_RATE = 65_536.0


def most_levels(max_concurrency: int) -> int:
    """The most levels a search up to MAX_CONCURRENCY measures: the doublings, then a bisection of the
    last doubling's gap (what bounds the time a search may take)."""
    doublings = math.ceil(math.log2(max_concurrency)) + 1 if max_concurrency > 1 else 1
    return doublings + max(0, math.ceil(math.log2(max(max_concurrency // 2, 1))))


def most_rate_levels(start_rate: float, max_rate: float, min_gain_percent: float) -> int:
    """The most levels an open-loop search measures: the doublings from START_RATE to MAX_RATE, then a
    bisection of the last doubling's gap down to MIN_GAIN_PERCENT of its lower end."""
    doublings = math.ceil(math.log2(max(max_rate / start_rate, 1))) + 1
    return doublings + max(0, math.ceil(math.log2(100 / min_gain_percent)))


def tidy_rate(rate: float) -> float:
    """A rate to ask for: three significant figures (perf_analyzer's CSV prints it back alike)."""
    return float(f"{rate:.3g}")


@dataclass
class Outcome:
    budget_ms: float
    levels: list[Level] = field(default_factory=list)
    unmeasured: list[float] = field(default_factory=list)
    stopped: str = ""
    error: str = ""
    load: str = "closed"
    client_bound: str = ""  # the first level the client could not send on schedule, and why

    def meets(self, level: Level) -> bool:
        """LEVEL's p99 is within the budget."""
        return level.p99_us <= self.budget_ms * 1000

    def within(self) -> list[Level]:
        """Levels within the budget that were sent as asked (a late level measured the client)."""
        return [m for m in self.levels if self.meets(m) and not m.late]

    @property
    def best(self) -> Level | None:
        fits = self.within()
        return max(fits, key=lambda m: (m.throughput, -m.order)) if fits else None

    @property
    def reason(self) -> str:
        """Why the capacity is invalid; empty when it is valid."""
        best = self.best
        if self.error:
            return f"search cut short: {self.error}"
        if not self.levels:
            return "no level could be measured"
        if best is None:
            first = min(self.levels, key=lambda m: m.order)
            if first.late and self.meets(first):  # late but within: the client's fault
                return f"client-bound from the first level: {level_name(first)}: {first.late}"
            return (
                f"no level within the budget: {level_name(first)} has p99 {first.p99_us / 1000:.1f} ms"
                f" > {self.budget_ms:g} ms"
            )
        if not enough_requests(best.requests):
            return f"too few requests for a p99 at {level_name(best)}: {best.requests} < {MIN_REQUESTS}"
        if best.rate is not None:
            off_schedule = schedule_problem(best)
            if off_schedule:
                return f"{level_name(best)} {off_schedule}"
        if self.client_bound:
            return client_bound(self.client_bound, best.throughput)
        verdict = self.verdict
        if verdict is not None and verdict.limit == "client":  # the client's CPUs were saturated
            return client_bound(verdict.why, best.throughput)
        return ""

    @property
    def verdict(self) -> Verdict | None:
        """What limited the capacity: its level's evidence and the next level's (bench.records.curve_verdict)."""
        best = self.best
        if best is None or best.evidence is None:
            return None
        return curve_verdict(self.levels, best.order)

    def record(self, seconds: float | None = None) -> CapacitySearch:
        best = self.best
        open_loop = self.load != "closed"
        return CapacitySearch(
            kind="capacity",
            load=self.load if open_loop else None,
            p99_budget_ms=self.budget_ms,
            valid=not self.reason,
            reason=self.reason,
            capacity=best.throughput if best else None,
            level=best,
            curve=sorted(self.levels, key=lambda m: m.order),
            unmeasured=[] if open_loop else sorted(int(u) for u in self.unmeasured),
            unmeasured_rates=sorted(self.unmeasured) if open_loop else None,
            windows=sum(m.windows for m in self.levels),
            stopped=self.stopped,
            min_requests=MIN_REQUESTS,
            seconds=seconds,
            verdict=self.verdict,
        )


def client_bound(why: str, capacity: float) -> str:
    """Why a capacity measured the client, not the server: what the client did, and the lower bound
    the measurement still gives."""
    return f"client-bound: {why}; the capacity is at least {capacity:,.1f} infer/s"


def level_name(level: Level) -> str:
    return f"level {level.level}" if level.rate is None else f"rate {level.rate:g}/s"


def schedule_problem(level: Level) -> str:
    """Why an open-loop level was not sent as asked (empty when it was): more than MAX_DELAYED_PERCENT of
    its requests left late, or its achieved rate strays from the asked one by more than the tolerance."""
    if level.delayed_percent is not None and level.delayed_percent > MAX_DELAYED_PERCENT:
        return f"was sent late: {level.delayed_percent:g} % of its requests delayed (at most {MAX_DELAYED_PERCENT:g} %)"
    if level.rate and level.sent_rate is not None:
        tolerance = rate_tolerance(level.requests)
        if abs(level.sent_rate - level.rate) > tolerance * level.rate:
            return f"achieved {level.sent_rate:,.1f} requests/s of {level.rate:g} asked (more than {tolerance:.1%} off)"
    return ""


def narrow(
    fits: Callable[[T], bool | None], lo: T, hi: T, midpoint: Callable[[T, T], T], min_gain_percent: float
) -> None:
    """Bisect between LO (within the budget) and HI (not) while the gap is wider than min_gain_percent
    of LO and a midpoint between them remains (below saturation throughput grows at most in proportion
    to the load, so a narrower gap cannot gain more)."""
    while lo and hi and (hi - lo) / lo > min_gain_percent / 100:
        mid = midpoint(lo, hi)
        if mid in (lo, hi):
            return
        if fits(mid):
            lo = mid
        else:
            hi = mid


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
        return outcome.meets(measured)

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
        narrow(fits, lo, hi, lambda a, b: (a + b) // 2, min_gain_percent)
    except SearchCut as err:
        outcome.error = str(err)
        outcome.stopped = "the measurement was cut short"
    return outcome


def search_rate(
    measure: Callable[[float], Level | None],
    budget_ms: float,
    min_gain_percent: float = DEFAULT_MIN_GAIN_PERCENT,
    start_rate: float = DEFAULT_START_RATE,
    max_rate: float = DEFAULT_MAX_RATE,
) -> Outcome:
    """The open-loop search: grow the request rate from START_RATE by doubling until a level breaks the
    budget, cannot be sent on schedule or cannot be measured, then bisect the rate between the last good
    level and the bad one to MIN_GAIN_PERCENT of it. MEASURE returns the level (its `late` set when the
    client could not keep up even after its retries), None when unstable, or raises SearchCut."""
    outcome = Outcome(budget_ms, load="poisson")

    def fits(rate: float) -> bool | None:
        measured = measure(rate)
        if measured is None:
            outcome.unmeasured.append(rate)
            return None
        outcome.levels.append(measured)
        within = outcome.meets(measured)
        # Sent late, yet within the budget: the client hid the queueing, the server may do more. Sent
        # late and over it anyway: the p99 could only be worse on schedule, the budget is broken.
        if measured.late and within and not outcome.client_bound:
            outcome.client_bound = f"{level_name(measured)}: {measured.late}"
        return within and not measured.late

    lo, hi, rate = 0.0, 0.0, tidy_rate(start_rate)
    try:
        while True:
            ok = fits(rate)
            if not ok:
                hi = rate
                what = "could not be measured" if ok is None else "broke the budget"
                if ok is not None and outcome.levels[-1].late and outcome.meets(outcome.levels[-1]):
                    what = "could not be sent on schedule"
                outcome.stopped = f"rate {rate:g}/s {what}"
                break
            lo = rate
            if rate >= max_rate:
                outcome.stopped = f"max_rate {max_rate:g}/s reached"
                break
            rate = min(tidy_rate(rate * 2), max_rate)
        narrow(fits, lo, hi, lambda a, b: tidy_rate((a + b) / 2), min_gain_percent)
    except SearchCut as err:
        outcome.error = str(err)
        outcome.stopped = "the measurement was cut short"
    return outcome
