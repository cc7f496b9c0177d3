"""Filters of the sweep role's knob search (`knob_search: coordinate`): the next config of a group and
the record of what it measured (bench.knobsearch decides), and a measured config's capacity read from
the metadata.json files of its instances."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from bench.knobsearch import plan, record
from bench.layout import knob_search_record_path
from bench.records import CapacitySearch, RecordError, machine_capacity


def sweep_knob_step(configs: list[dict], capacities: dict[str, float | None]) -> dict:
    """{'config': the next config or None, 'why': ..., 'record': the search so far, 'record_path': where
    it is kept under the host's results of the run}."""
    budget = int(configs[0]["knob_budget"]) if configs else 0
    config, why = plan(configs, capacities, budget)
    first = configs[0] if configs else {"model": "none", "mode": "none"}
    return {
        "config": config,
        "why": why,
        "record": record(configs, capacities, budget, first.get("knob_group", "")).to_json(),
        "record_path": str(knob_search_record_path(Path("."), first["model"], first["mode"])),
    }


def sweep_machine_capacity(slurped: list[dict]) -> float | None:
    """The valid capacity of a config (bench.records.machine_capacity: the sum over its instances), or
    None when any instance's search is invalid, failed, missing or its record broken. SLURPED: the
    results of ansible.builtin.slurp over its metadata.json."""
    searches = []
    for result in slurped:
        if result.get("failed") or "content" not in result:
            return None
        try:
            search = CapacitySearch.from_json(json.loads(base64.b64decode(result["content"])).get("search"), "search")
        except (RecordError, ValueError, AttributeError):
            return None  # no search, or a record the contract refuses: no capacity to trust
        searches.append((search.capacity, search.valid))
    return machine_capacity(searches)


class FilterModule:
    def filters(self) -> dict:
        return {"sweep_knob_step": sweep_knob_step, "sweep_machine_capacity": sweep_machine_capacity}
