"""The answers engineers ask the store for: best throughput per model and the knobs behind it, the
best within a p99 budget, `entire` over `single` scaling, and hosts that stray from their twins."""

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


def best_per_model(points: pd.DataFrame, p99_budget_us: float | None = None) -> pd.DataFrame:
    """Per model, the machine with the highest throughput (the seed's table), optionally only among
    points whose p99 latency is within the budget."""
    if p99_budget_us is not None:
        points = points[points["p99_us"] <= p99_budget_us]
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


def stray_hosts(points: pd.DataFrame, groups: dict[str, str], tolerance: float = 0.10) -> pd.DataFrame:
    """Hosts whose throughput differs from the median of their group of identical hosts (GROUPS maps
    host -> group, e.g. CPU model and core count) by more than TOLERANCE, per run, model and config."""
    machines = machine_throughput(points)
    machines["group"] = machines["host"].map(groups)
    machines = machines.dropna(subset=["group"])
    keys = ["run_id", "model", "config_id", "group"]
    machines["group_median"] = machines.groupby(keys)["throughput"].transform("median")
    machines["group_size"] = machines.groupby(keys)["host"].transform("count")
    machines["deviation"] = machines["throughput"] / machines["group_median"] - 1.0
    strays = machines[(machines["group_size"] >= 3) & (machines["deviation"].abs() > tolerance)]
    return strays[["run_id", "model", "config_id", "group", "host", "throughput", "group_median", "deviation"]]
