"""The capacity search's decisions (bench.capacity) on curves given as functions: which levels it
measures, where it stops, and when its answer is invalid. The real perf_analyzer runs against the
known-curve server in tests/models/test_capacity_runner.py."""

from __future__ import annotations

import pytest

from bench.capacity import MIN_REQUESTS, SearchCut, search
from bench.records import Level
from sim.known_curve.server import Curve, expected_level

pytestmark = pytest.mark.unit


def on(curve: Curve, batch: int = 1, window_s: float = 3.0, asked: list[int] | None = None):
    def measure(level: int) -> Level:
        if asked is not None:
            asked.append(level)
        rate = curve.throughput(level, batch)
        latency_us = curve.latency_ms(level, batch) * 1000
        return Level(level, rate, latency_us, latency_us, int(rate / batch * window_s), 3)

    return measure


@pytest.mark.parametrize("budget_ms", [12, 20, 31, 32, 45, 60])
def test_the_search_finds_the_best_level_within_the_budget(budget_ms: float) -> None:
    curve = Curve(workers=16, base_ms=9, contention_ms=2)
    asked: list[int] = []
    outcome = search(on(curve, asked=asked), budget_ms, min_gain_percent=1, max_concurrency=64)
    level, rate = expected_level(curve, budget_ms, 1, 64)
    assert (outcome.best.level, outcome.best.throughput) == (level, pytest.approx(rate, rel=0.01))
    assert outcome.record().to_json()["valid"], outcome.reason
    assert len(asked) <= 12 and len(set(asked)) == len(asked), asked  # a level is measured once


def test_growth_stops_when_throughput_no_longer_gains() -> None:
    curve = Curve(workers=4, base_ms=10, contention_ms=0)  # flat past 4 clients, latency still within budget
    asked: list[int] = []
    outcome = search(on(curve, asked=asked), 1000, min_gain_percent=5, max_concurrency=256)
    assert asked == [1, 2, 4, 8]
    assert outcome.best.level == 4 and "gained less than 5 %" in outcome.stopped


def test_a_budget_no_level_meets_is_invalid_and_says_why() -> None:
    outcome = search(on(Curve(base_ms=50)), 20)
    record = outcome.record().to_json()
    assert not record["valid"] and record["capacity"] is None
    assert record["reason"] == "no level within the budget: level 1 has p99 50.0 ms > 20 ms"
    assert [m["level"] for m in record["curve"]] == [1]


def test_too_few_requests_make_the_capacity_invalid_but_keep_it() -> None:
    record = search(on(Curve(), window_s=0.1), 60).record().to_json()
    assert record["capacity"] > 0 and not record["valid"]
    assert f"< {MIN_REQUESTS}" in record["reason"]


def test_an_unmeasurable_level_is_the_boundary_and_is_recorded() -> None:
    measure = on(Curve())

    def noisy(level: int) -> Level | None:
        return None if level == 8 else measure(level)

    outcome = search(noisy, 1000, min_gain_percent=1)
    assert 8 in outcome.unmeasured and outcome.best.level < 8 and "could not be measured" in outcome.stopped


def test_a_lost_server_cuts_the_search_keeping_its_levels() -> None:
    measure = on(Curve())

    def dying(level: int) -> Level:
        if level >= 4:
            raise SearchCut("level 4: connection refused")
        return measure(level)

    record = search(dying, 1000).record().to_json()
    assert [m["level"] for m in record["curve"]] == [1, 2]
    assert not record["valid"] and record["reason"] == "search cut short: level 4: connection refused"
