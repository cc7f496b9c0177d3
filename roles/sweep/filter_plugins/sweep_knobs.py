"""Filters of the sweep role's knob search (`knob_search: coordinate`): the next config of a group and
the record of what it measured (bench.knobsearch decides), and a measured config's capacity read from
the metadata.json files of its instances."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from bench.knobsearch import plan, record
from bench.layout import knob_search_record_path


def sweep_knob_step(configs: list[dict], capacities: dict[str, float | None]) -> dict:
    """{'config': the next config or None, 'why': ..., 'record': the search so far, 'record_path': where
    it is kept under the host's results of the run}."""
    budget = int(configs[0]["knob_budget"]) if configs else 0
    config, why = plan(configs, capacities, budget)
    first = configs[0] if configs else {"model": "none", "mode": "none"}
    return {
        "config": config,
        "why": why,
        "record": record(configs, capacities, budget) | {"group": first.get("knob_group", "")},
        "record_path": str(knob_search_record_path(Path("."), first["model"], first["mode"])),
    }


def sweep_machine_capacity(slurped: list[dict]) -> float | None:
    """The valid capacity of a config (the sum over its instances), or None when any instance's search
    is invalid, failed or missing. SLURPED: the results of ansible.builtin.slurp over its metadata.json."""
    total = 0.0
    for result in slurped:
        if result.get("failed") or "content" not in result:
            return None
        search = json.loads(base64.b64decode(result["content"])).get("search") or {}
        if not search.get("valid") or search.get("capacity") is None:
            return None
        total += float(search["capacity"])
    return total if slurped else None


class FilterModule:
    def filters(self) -> dict:
        return {"sweep_knob_step": sweep_knob_step, "sweep_machine_capacity": sweep_machine_capacity}
