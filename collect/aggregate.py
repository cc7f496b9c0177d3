"""The answers engineers ask the store for: best throughput per model and the knobs behind it, and
`entire` over `single` scaling."""

from __future__ import annotations

import pandas as pd

from collect import queries
from collect.capacity import efficiency
from collect.store import Store

TABLE = [
    "model",
    "mode",
    "batch_size",
    "throughput",
    "host",
    "run_id",
    "config_id",
    "concurrency_range",
    "intra",
    "inter",
    "concurrency",
    "p50_us",
    "p90_us",
    "p99_us",
    # what the host did at the best points (collect.capacity.machine_evidence), NaN where unrecorded
    "cores_used",
    "per_core_used",
    "watts",
    "inferences_per_joule",
    "limited_by",
    "throttled",
]


def best_per_model(store: Store, run_id: str) -> pd.DataFrame:
    """Per model, mode and batch size, the machine with the highest throughput of the run."""
    best = queries.best_per_model(store, run_id)
    if best.empty:
        return pd.DataFrame(columns=TABLE)
    best = best.assign(**efficiency(best["throughput"], best["cores_used"], best["watts"]))
    return best[TABLE].reset_index(drop=True)


def scaling(machines: pd.DataFrame) -> pd.DataFrame:
    """entire / single throughput of each host, model and run, for configs equal but for the mode
    (MACHINES: queries.machines of the runs wanted)."""
    same = ["run_id", "host", "model", *[k for k in queries.KNOBS if k != "mode"]]
    single = machines[machines["mode"] == "single"][[*same, "throughput"]]
    entire = machines[machines["mode"] == "entire"][[*same, "throughput", "instances"]]
    both = entire.merge(single, on=same, suffixes=("_entire", "_single"))
    both["scaling"] = both["throughput_entire"] / both["throughput_single"]
    return both.reset_index(drop=True)
