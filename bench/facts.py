"""Facts of the benchmark written once: every role, argument check and module derives from these.

Ansible reads them through the `recbench_fact` filter (plugins/filter/recbench_facts.py), e.g.
`"{{ 'models' | recbench_fact }}"`, so a role never lists the models or the paths itself.
"""

from __future__ import annotations

import re
from typing import Any

# The five models of the seed benchmark, in its order, and the data set each trains on.
MODEL_DATASETS: dict[str, str] = {
    "wide_and_deep": "criteo",
    "dlrm": "criteo",
    "deepfm": "criteo",
    "dffm": "criteo",
    "dssm": "taobao",
}
MODELS: list[str] = list(MODEL_DATASETS)
DATASETS: list[str] = sorted(set(MODEL_DATASETS.values()))

# Everything recbench keeps on a host lives under one base directory.
BASE_DIR = "/opt/recbench"
RESULTS_ROOT = f"{BASE_DIR}/results"
MODELS_DIR = f"{BASE_DIR}/models"
WORK_DIR = f"{BASE_DIR}/work"
DATA_DIR = f"{BASE_DIR}/data"

# The gRPC port of the server on NUMA node N is BASE_PORT + PORT_STEP * N; all of them lie in PORT_RANGE.
BASE_PORT = 8500
PORT_STEP = 10
PORT_RANGE = "8500-8599"

# A run id names a directory on every host and on the controller: the pipeline makes one from the UTC time.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
RUN_ID_STRFTIME = "%Y%m%dT%H%M%SZ"

# Host-side timeouts (seconds) and retries, the defaults of the roles that run them.
CLIENT_TIMEOUT_S = 600  # one perf_analyzer attempt
CLIENT_RETRIES = 2  # retries of the levels an attempt did not reach, each with twice the window
READY_TIMEOUT_S = 300  # a server loading its model and answering GetModelMetadata
TRAIN_TIMEOUT_S = 3600  # one training or export

FACTS: dict[str, Any] = {
    "models": MODELS,
    "model_datasets": MODEL_DATASETS,
    "datasets": DATASETS,
    "base_dir": BASE_DIR,
    "results_root": RESULTS_ROOT,
    "models_dir": MODELS_DIR,
    "work_dir": WORK_DIR,
    "data_dir": DATA_DIR,
    "base_port": BASE_PORT,
    "port_step": PORT_STEP,
    "port_range": PORT_RANGE,
    "run_id_pattern": RUN_ID_PATTERN,
    "run_id_strftime": RUN_ID_STRFTIME,
    "client_timeout_s": CLIENT_TIMEOUT_S,
    "client_retries": CLIENT_RETRIES,
    "ready_timeout_s": READY_TIMEOUT_S,
    "train_timeout_s": TRAIN_TIMEOUT_S,
}


def fact(name: str) -> Any:
    """One fact by name; an unknown name is an error that lists the known ones."""
    if name not in FACTS:
        raise KeyError(f"no recbench fact {name!r} (known: {', '.join(sorted(FACTS))})")
    return FACTS[name]


def port_of(numa_node: int, base_port: int = BASE_PORT) -> int:
    return base_port + PORT_STEP * numa_node


def dataset_of(model: str) -> str:
    if model not in MODEL_DATASETS:
        raise KeyError(f"unknown model {model!r} (one of {', '.join(MODELS)})")
    return MODEL_DATASETS[model]


def valid_run_id(run_id: str) -> bool:
    return bool(re.match(RUN_ID_PATTERN, run_id))


def new_run_id() -> str:
    """A run id for a run starting now (UTC)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime(RUN_ID_STRFTIME)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.facts run-id` prints a new run id; `python -m bench.facts NAME` prints one fact."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.facts run-id | NAME", file=sys.stderr)
        return 2
    if args[0] == "run-id":
        print(new_run_id())
        return 0
    try:
        value = fact(args[0])
    except KeyError as err:
        print(f"facts: {err.args[0]}", file=sys.stderr)
        return 2
    print(value if isinstance(value, str | int) else json.dumps(value))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
