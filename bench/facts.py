"""Facts of the benchmark written once: every role, argument check and module derives from these.

Ansible reads them through the `recbench_fact` filter (plugins/filter/recbench_facts.py), e.g.
`"{{ 'models' | recbench_fact }}"`, so a role never lists the models or the paths itself.
"""

from __future__ import annotations

import re
from typing import Any

from bench.messages import shown
from bench.versions import ARCHES, LOADGEN_ARCHES, VERSIONS

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
# The sweep queue's runner runs as root: its queue, progress and job files live where only root writes
# (outside BASE_DIR, which the service account owns and could rearrange).
SWEEP_STATE_DIR = "/var/lib/recbench/sweep"
DATA_DIR = f"{BASE_DIR}/data"
ARTIFACTS_DIR = f"{BASE_DIR}/artifacts"  # files from the controller's artifact store, sha256-checked
WHEELHOUSE_DIR = f"{BASE_DIR}/wheelhouse"  # wheelhouses from the artifact store, unpacked once per content
TENSORFLOW_VENV = f"{BASE_DIR}/venvs/tensorflow"  # role tensorflow's; the model zoo and readiness probe run in it
PERF_ANALYZER_VENV = f"{BASE_DIR}/venvs/perf_analyzer"
TFSERVING_DIR = f"{BASE_DIR}/tfserving"  # TF-Serving builds, one directory each
MODELZOO_DIR = f"{BASE_DIR}/modelzoo"  # model zoo code releases
BUILD_DIR = f"{BASE_DIR}/build"  # a builder's work directories (role tfserving_build)

# Ansible's local facts directory (ansible_local): each role records there what it installed or found.
FACTS_D_DIR = "/etc/ansible/facts.d"

# The files a trained model leaves: the trainer's record (<output>/<model>/) and the export's card
# (<models_dir>/<model>/<version>/).
TRAIN_RECORD_NAME = "train_record.json"
MODEL_CARD_NAME = "model_card.json"

# The gRPC port of the server on NUMA node N is BASE_PORT + PORT_STEP * N; all of them lie in PORT_RANGE.
BASE_PORT = 8500
PORT_STEP = 10
PORT_RANGE = "8500-8599"

# A run id names a directory on every host and on the controller: the pipeline makes one from the UTC time.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
RUN_ID_STRFTIME = "%Y%m%dT%H%M%SZ"

# A name that becomes a path, a systemd unit instance or a line of a file on a host (a model, a server
# instance): a whole string of letters, digits, . _ -, starting with a letter or digit. No '/', no '..'
# alone, no newline, never empty. Ports are TCP ports.
NAME_MAX = 128
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX - 1}}}$"
NAME_RULE = f"1 to {NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit"
# A host's inventory name becomes a path too (results/<run>/<host>/): the same rule, a DNS name's length.
HOST_MAX = 253
HOST_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{HOST_MAX - 1}}}$"
PORT_MIN, PORT_MAX = 1, 65535
# The systemd unit of the server instance <model>-<numa node> (role tfserving's tfserving@.service),
# the directory of its environment files and the readiness probe the role installs.
SERVER_UNIT = "tfserving@{}.service"
TFSERVING_CONF_DIR = "/etc/recbench/tfserving"
TFSERVING_PROBE = "/usr/local/bin/recbench-tfserving-ready"
# The model zoo's launcher (role modelzoo): TensorFlow's Python with the model zoo and bench importable.
MODELZOO_PYTHON = "/usr/local/bin/recbench-python"
# The host-side runner of a run's sweep queue (role sweep's recbench-sweep@.service, instance: run id),
# its heartbeat, and how old a heartbeat may be before the runner counts as dead (a controller's look
# at the queue waits at most SWEEP_POLL_S for it to end before it reports progress).
SWEEP_UNIT = "recbench-sweep@{}.service"
HEARTBEAT_S = 5
STALE_S = 30
SWEEP_POLL_S = 30
# The key of what a look at a host's queue prints (bench.queue), read by the sweep role and the
# recbench_hosts callback.
SWEEP_PROGRESS_KEY = "recbench_progress"

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
    "sweep_state_dir": SWEEP_STATE_DIR,
    "data_dir": DATA_DIR,
    "artifacts_dir": ARTIFACTS_DIR,
    "wheelhouse_dir": WHEELHOUSE_DIR,
    "tensorflow_venv": TENSORFLOW_VENV,
    "perf_analyzer_venv": PERF_ANALYZER_VENV,
    "tfserving_dir": TFSERVING_DIR,
    "modelzoo_dir": MODELZOO_DIR,
    "build_dir": BUILD_DIR,
    "facts_d_dir": FACTS_D_DIR,
    "train_record_name": TRAIN_RECORD_NAME,
    "model_card_name": MODEL_CARD_NAME,
    # The table of versions and architectures (bench/versions.py), whole and one version each.
    "versions": VERSIONS,
    "arches": ARCHES,
    "tfserving_version": VERSIONS["tfserving"],
    "tensorflow_version": VERSIONS["tensorflow"],
    "tritonclient_version": VERSIONS["tritonclient"],
    "cuda_runtime_version": VERSIONS["cuda_runtime"],
    "pyyaml_version": VERSIONS["pyyaml"],
    "loadgen_version": VERSIONS["loadgen"],
    "loadgen_arches": LOADGEN_ARCHES,
    "triton_sdk_image": VERSIONS["triton_sdk_image"],
    "base_port": BASE_PORT,
    "port_step": PORT_STEP,
    "port_range": PORT_RANGE,
    "run_id_pattern": RUN_ID_PATTERN,
    "run_id_strftime": RUN_ID_STRFTIME,
    "name_pattern": NAME_PATTERN,
    "host_pattern": HOST_PATTERN,
    "port_min": PORT_MIN,
    "port_max": PORT_MAX,
    "client_timeout_s": CLIENT_TIMEOUT_S,
    "client_retries": CLIENT_RETRIES,
    "ready_timeout_s": READY_TIMEOUT_S,
    "train_timeout_s": TRAIN_TIMEOUT_S,
    "tfserving_conf_dir": TFSERVING_CONF_DIR,
    "tfserving_probe": TFSERVING_PROBE,
    "modelzoo_python": MODELZOO_PYTHON,
    "sweep_unit": SWEEP_UNIT,
    "heartbeat_s": HEARTBEAT_S,
    "stale_s": STALE_S,
    "sweep_poll_s": SWEEP_POLL_S,
    "sweep_progress_key": SWEEP_PROGRESS_KEY,
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
    # fullmatch: with re.match, '$' also matches before a trailing newline.
    return isinstance(run_id, str) and bool(re.fullmatch(RUN_ID_PATTERN, run_id))


def check_name(value: Any, what: str) -> str:
    """VALUE if it is a name (NAME_PATTERN, the whole string); else a one-line ValueError naming WHAT."""
    if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"{what} {shown(value, 80)} is not a name ({NAME_RULE})")
    return value


def parse_port_range(text: Any, what: str = "port range") -> tuple[int, int]:
    """'first-last' as two ports, first <= last; else a one-line ValueError naming WHAT."""
    match = re.fullmatch(r"([0-9]{1,5})-([0-9]{1,5})", text) if isinstance(text, str) else None
    first, last = (int(match.group(1)), int(match.group(2))) if match else (0, -1)
    if not (PORT_MIN <= first <= last <= PORT_MAX):
        raise ValueError(f"{what} {shown(text, 80)} is not first-last with {PORT_MIN} <= first <= last <= {PORT_MAX}")
    return first, last


def check_port(value: Any, what: str, port_range: str | None = None) -> int:
    """VALUE as a TCP port (an int, or a string of ASCII digits), within PORT_RANGE ('first-last') when
    one is given; else a one-line ValueError naming WHAT."""
    port = value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        port = int(value)
    if isinstance(port, bool) or not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        raise ValueError(f"{what} {shown(value, 80)} is not a TCP port ({PORT_MIN}-{PORT_MAX})")
    if port_range is not None:
        first, last = parse_port_range(port_range)
        if not first <= port <= last:
            raise ValueError(f"{what} {port} is outside the port range {port_range}")
    return port


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
