"""Filters of the train role: the pinning of each mode, the trainer's options, each model's data."""

from __future__ import annotations

ONE_NODE_NOTE = "one NUMA node: single and entire both use every CPU"
# Options of `modelzoo train` that mean "the model's default" when 0, and so are left out.
DEFAULTED_OPTIONS = ("steps", "epochs", "batch_size", "intra", "inter")


def train_modes(modes: list[str], numa_nodes: list[dict]) -> list[dict]:
    """`single` trains on NUMA node 0's CPUs, `entire` on every CPU (the seed's pinning)."""
    if not numa_nodes:
        raise ValueError("train: the host fact lists no NUMA node (run host_prep first)")
    nodes = sorted(numa_nodes, key=lambda n: int(n["id"]))
    cpus = {"single": nodes[0]["cpus"], "entire": ",".join(n["cpus"] for n in nodes)}
    unknown = [m for m in modes if m not in cpus]
    if unknown:
        raise ValueError(f"train: modes {unknown} are not single or entire")
    note = ONE_NODE_NOTE if len(nodes) == 1 else ""
    return [{"mode": mode, "cpus": cpus[mode], "note": note} for mode in modes]


def train_options(options: dict) -> dict:
    """The seed always; every other option only when it is not 0."""
    kept = {"seed": options.get("seed", 0)}
    kept.update({key: options[key] for key in DEFAULTED_OPTIONS if options.get(key, 0) != 0})
    return kept


def train_data(models: list[str], data_dir: str, model_datasets: dict[str, str]) -> dict:
    """Train and eval file of each model's data set, where role modelzoo put them."""
    return {
        model: {
            "train": f"{data_dir}/{model_datasets[model]}/train.csv",
            "eval": f"{data_dir}/{model_datasets[model]}/eval.csv",
        }
        for model in models
    }


class FilterModule:
    def filters(self) -> dict:
        return {"train_modes": train_modes, "train_options": train_options, "train_data": train_data}
