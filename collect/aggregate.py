"""The answers engineers ask the store for: best throughput per model and the knobs behind it, and
`entire` over `single` scaling."""

from __future__ import annotations

import pandas as pd

from collect.frames import KNOBS, machine_throughput

TABLE = [
    "model",
    "throughput",
    "host",
    "run_id",
    "config_id",
    "concurrency_range",
    "batch_size",
    "intra",
    "inter",
    "concurrency",
    "p50_us",
    "p90_us",
    "p99_us",
]


def best_per_model(points: pd.DataFrame) -> pd.DataFrame:
    """Per model, the machine with the highest throughput (the seed's table)."""
    machines = machine_throughput(points)
    if machines.empty:
        return pd.DataFrame(columns=TABLE)
    best = machines.loc[machines.groupby("model")["throughput"].idxmax()]
    return best[TABLE].sort_values("model").reset_index(drop=True)


def scaling(points: pd.DataFrame) -> pd.DataFrame:
    """entire / single throughput of each host, model and run, for configs equal but for the mode."""
    machines = machine_throughput(points)
    same = ["run_id", "host", "model", *[k for k in KNOBS if k != "mode"]]
    single = machines[machines["mode"] == "single"][[*same, "throughput"]]
    entire = machines[machines["mode"] == "entire"][[*same, "throughput", "instances"]]
    both = entire.merge(single, on=same, suffixes=("_entire", "_single"))
    both["scaling"] = both["throughput_entire"] / both["throughput_single"]
    return both.reset_index(drop=True)
