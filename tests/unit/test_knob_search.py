"""The knob search's path (bench.knobsearch) over a space of known capacities: it reaches the best
config of a separable space in a fraction of the product, stops with its reason, respects its budget,
never picks an invalid capacity, and walks the same path again on a resume."""

from __future__ import annotations

import itertools

import pytest

from bench.knobsearch import plan, record

pytestmark = pytest.mark.unit

AXES = {"batch_size": [8, 32, 128], "intra": [0, 2, 4, 8], "inter": [0, 1, 2], "xla": [False, True], "onednn": [False]}


def space() -> list[dict]:
    return [
        {"config_id": f"c{i}", **dict(zip(AXES, values, strict=True))}
        for i, values in enumerate(itertools.product(*AXES.values()))
    ]


def landscape(config: dict) -> float | None:
    """Capacity of a config: batching and threads help up to a point, XLA a little, intra 8 is invalid."""
    if config["intra"] == 8:
        return None
    batch = {8: 1.0, 32: 1.6, 128: 1.4}[config["batch_size"]]
    intra = {0: 1.0, 2: 1.3, 4: 1.5}[config["intra"]]
    inter = {0: 1.0, 1: 1.05, 2: 1.02}[config["inter"]]
    return 1000 * batch * intra * inter * (1.1 if config["xla"] else 1.0)


def run(configs: list[dict], budget: int = 100) -> tuple[dict[str, float | None], str]:
    capacities: dict[str, float | None] = {}
    while True:
        config, why = plan(configs, capacities, budget)
        if config is None:
            return capacities, why
        assert config["config_id"] not in capacities, "a config is measured once"
        capacities[config["config_id"]] = landscape(config)


def test_the_search_reaches_the_best_of_the_product_in_a_fraction_of_it() -> None:
    configs = space()
    capacities, why = run(configs)
    best_of_all = max(v for c in configs if (v := landscape(c)) is not None)
    found = max(v for v in capacities.values() if v is not None)
    assert found == pytest.approx(best_of_all)
    assert len(capacities) <= 0.25 * len(configs), len(capacities)  # 16 of 72
    assert "gained less than" in why
    assert next(iter(capacities)) == "c0"  # started from the first value of every list


def test_the_budget_is_respected_and_said() -> None:
    capacities, why = run(space(), budget=4)
    assert len(capacities) == 4 and why == "the budget of 4 configs is spent"


def test_a_resume_walks_the_same_path() -> None:
    configs = space()
    full, _ = run(configs)
    half = dict(itertools.islice(full.items(), len(full) // 2))
    resumed = dict(half)
    while (config := plan(configs, resumed, 100)[0]) is not None:
        resumed[config["config_id"]] = landscape(config)
    assert list(resumed) == list(full)


def test_no_valid_capacity_stops_and_the_record_says_what_was_measured() -> None:
    configs = space()[:2]
    capacities = {c["config_id"]: None for c in configs}
    assert plan(configs, capacities) == (None, "no config has a valid capacity")
    written = record(configs, capacities, 8).to_json()
    assert written["best"] is None and [m["config_id"] for m in written["measured"]] == ["c0", "c1"]
    assert plan([configs[0]], {"c0": 5.0}) == (None, "nothing to search: every knob has one value")
