"""Knob search: the best capacity over a space of knobs (batch, intra, inter, xla, onednn, servers per
NUMA node) without
measuring the whole product.

A coordinate search, chosen because each knob's effect is mostly its own (threads, batching, a
compiler switch) and it needs no model of the space: it starts from the first value of every list
(the seed's values), then, knob by knob, measures the other values of that knob with the rest held
at the best config so far and moves to the best; it passes over the knobs again until a pass gains
less than min_gain_percent or the budget of configs is spent. An invalid capacity never wins. Triton
Model Analyzer's quick search is a hill climb of the same family.

`next_config` is stateless: given the configs and the capacities measured so far it names the next
config, or None with the reason the search stopped. A resumed run therefore walks the same path,
and finds its earlier configs already recorded. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.layout import META_NAME
from bench.records import CapacitySearch, KnobMeasured, KnobSearchRecord, RecordError, machine_capacity

KNOBS = ("batch_size", "intra", "inter", "xla", "onednn", "instances_per_node")
KNOB_SEARCHES = ("grid", "coordinate")
DEFAULT_KNOB_BUDGET = 8


def _key(config: Mapping, knobs: Sequence[str]) -> tuple:
    return tuple(config.get(k, 1) for k in knobs)  # instances_per_node is left out of records at 1


def plan(
    configs: Sequence[Mapping],
    capacities: Mapping[str, float | None],
    budget: int = DEFAULT_KNOB_BUDGET,
    min_gain_percent: float = 1.0,
) -> tuple[Mapping | None, str]:
    """(next config to measure, why) or (None, why the search stopped).

    CONFIGS: the full product, in definition order (its first is the start). CAPACITIES: config id ->
    valid capacity (None: measured, invalid or failed) of those measured so far."""
    if not configs:
        return None, "no configs"
    knobs = [k for k in KNOBS if len({c.get(k, 1) for c in configs}) > 1]
    by_key = {_key(c, knobs): c for c in configs}
    measured = [c for c in configs if c["config_id"] in capacities]
    start = configs[0]
    if start["config_id"] not in capacities:
        return start, "the start: every knob at its first value"
    if len(measured) >= budget:
        return None, f"the budget of {budget} configs is spent"

    def value(config: Mapping) -> float:
        found = capacities.get(config["config_id"])
        return found if found is not None else -1.0

    # Replay the passes over the knobs on what is known; the first neighbour not measured is next.
    best = start
    gain = 1 + min_gain_percent / 100
    while True:
        at_pass_start = value(best)
        for knob in knobs:
            for option in sorted({c.get(knob, 1) for c in configs}, key=str):
                neighbour = by_key.get(_key({**best, knob: option}, knobs))
                if neighbour is None or neighbour["config_id"] == best["config_id"]:
                    continue
                if neighbour["config_id"] not in capacities:
                    return neighbour, f"{knob}={option} with the rest at the best so far ({best['config_id']})"
            candidates = [by_key[_key({**best, knob: o}, knobs)] for o in {c.get(knob, 1) for c in configs}]
            best = max(candidates, key=lambda c: (value(c), c["config_id"] == best["config_id"]))
        if not knobs:
            return None, "nothing to search: every knob has one value"
        if value(best) <= 0:
            return None, "no config has a valid capacity"
        if value(best) < at_pass_start * gain:
            return None, f"a pass over {', '.join(knobs)} gained less than {min_gain_percent:g} %"


def record(
    configs: Sequence[Mapping], capacities: Mapping[str, float | None], budget: int, group: str = ""
) -> KnobSearchRecord:
    """What the search measured, in order, its best and why it stopped (written beside the results)."""
    _, why = plan(configs, capacities, budget)
    valid = {cid: cap for cid, cap in capacities.items() if cap is not None}
    best = max(valid, key=valid.__getitem__) if valid else None
    return KnobSearchRecord(
        knob_search="coordinate",
        budget_configs=budget,
        space=len(configs),
        measured=[KnobMeasured(config_id=cid, capacity=cap) for cid, cap in capacities.items()],
        best=KnobMeasured(config_id=best, capacity=valid[best]) if best else None,
        stopped=why,
        group=group,
    )


def recorded_capacity(config_dir: Path, instances: Sequence[str]) -> float | None:
    """The valid capacity of a measured config (bench.records.machine_capacity: the sum over its
    INSTANCES), or None when any instance's search is invalid, failed, missing or its record broken."""
    searches = []
    for name in instances:
        try:
            meta = json.loads((config_dir / name / META_NAME).read_text())
            search = CapacitySearch.from_json(meta.get("search"), "search")
        except (OSError, RecordError, ValueError, AttributeError):
            return None  # no search, or a record the contract refuses: no capacity to trust
        searches.append((search.capacity, search.valid))
    return machine_capacity(searches)
