"""Sweep definitions: one validated YAML file per model under playbooks/sweeps/, optional profiles
(playbooks/sweeps/profiles/<name>.yml) that override keys for every model, and their expansion into
configs, each with a stable id derived from its knobs.

The id changes when a knob that shapes the measurement changes and never otherwise, so results
stay comparable across runs and re-running a sweep can tell which configs are already done.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from bench.capacity import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RATE,
    DEFAULT_MIN_GAIN_PERCENT,
    DEFAULT_START_RATE,
    most_levels,
    most_rate_levels,
)
from bench.capacity_run import LATE_RETRIES
from bench.facts import PORT_STEP
from bench.knobsearch import DEFAULT_KNOB_BUDGET, KNOB_SEARCHES
from bench.messages import clipped, shown
from bench.records import (
    CLIENTS,
    DISTRIBUTIONS,
    INPUT_DATA,
    LOADS,
    MAX_BATCH_SIZE,
    MAX_CLIENT_THREADS,
    MAX_CONCURRENCY,
    MAX_RATE,
    MAX_THREADS,
    MIN_REQUESTS,
    MODES,
    NAME_PATTERN,
    SEARCH_KINDS,
    ConfigRecord,
    RecordError,
    levels_of,
    parse_range,
)

SWEEP_DIR = Path(__file__).resolve().parents[2] / "playbooks" / "sweeps"

# key -> (type, lists allowed); lists are the axes the configs are the product of.
AXES = {
    "modes": str,
    "concurrency_ranges": str,
    "batch_sizes": int,
    "intra": int,
    "inter": int,
    "xla": bool,
    "onednn": bool,
}
SCALARS = {
    "model": str,
    "measurement_interval_ms": int,
    "stability_percentage": int,
    "max_trials": int,
    "latency_threshold_ms": int,
    "percentile": int,
    "request_distribution": str,
    "input_data": str,
}
# Optional axes: (type, default list). Their default value is left out of config ids, which predate them.
OPTIONAL_AXES = {"instances_per_node": (int, [1])}
# Keys of `search: capacity`, optional: (type, default). A grid config carries none of them, so its id
# is what it was before capacity searches existed.
SEARCH = {
    "search": (str, "grid"),
    "p99_budget_ms": (float, None),
    "min_gain_percent": (float, DEFAULT_MIN_GAIN_PERCENT),
    "max_concurrency": (int, DEFAULT_MAX_CONCURRENCY),
}
# Keys of an open-loop search (`load: poisson`, with search: capacity), optional: (type, default). A
# closed-loop config carries none of them, so its id is what it was before open loops existed.
OPEN_LOOP = {
    "load": (str, "closed"),
    "client": (str, "perf_analyzer"),
    "start_rate": (float, DEFAULT_START_RATE),
    "max_rate": (float, DEFAULT_MAX_RATE),
    "max_threads": (int, 256),
    # requests a measurement window holds at least (its length follows from the rate): perf_analyzer
    # reports the last three stable windows, so three of these make MLPerf's 459 for a p99
    "window_requests": (int, 153),
    # MLPerf's Server scenario runs at least 600 s (its production default; profiles for the simulated
    # fleet shorten it and say so)
    "loadgen_min_duration_ms": (int, 600_000),
    # the least queries a LoadGen run needs (MLPerf's DLRM-v2 Server rule: 270,336; by default the
    # early-stopping bound of a p99, bench.records.MIN_REQUESTS)
    "loadgen_min_queries": (int, MIN_REQUESTS),
}
# How the knob lists are explored: their full product (grid), or a coordinate search of capacity over
# them within a budget of configs (bench.knobsearch). Not knobs themselves: not in any config id.
KNOB_SEARCH = {"knob_search": (str, "grid"), "knob_budget": (int, DEFAULT_KNOB_BUDGET)}


# A capacity search's id says so, and under which budget: `dlrm-entire-b256-cap300ms-a396733615`. The
# collector tells searches from grids by it (collect.queries), without reading every metadata.json.
CAPACITY_ID_MARK = "cap"


class SweepError(ValueError):
    """A sweep definition or profile is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class SweepConfig:
    model: str
    mode: str
    concurrency_range: str
    batch_size: int
    intra: int
    inter: int
    xla: bool
    onednn: bool
    measurement_interval_ms: int
    stability_percentage: int
    max_trials: int
    latency_threshold_ms: int
    percentile: int
    request_distribution: str
    input_data: str
    search: str = "grid"
    p99_budget_ms: float | None = None
    min_gain_percent: float | None = None
    max_concurrency: int | None = None
    knob_search: str = "grid"
    knob_budget: int = DEFAULT_KNOB_BUDGET
    instances_per_node: int = 1
    load: str = "closed"
    client: str = "perf_analyzer"
    start_rate: float | None = None
    max_rate: float | None = None
    max_threads: int | None = None
    window_requests: int | None = None
    loadgen_min_duration_ms: int | None = None
    loadgen_min_queries: int | None = None

    def knobs(self) -> dict[str, object]:
        """The config's knobs; a grid config has no search keys (its id predates them)."""
        knobs = asdict(self)
        for key in KNOB_SEARCH:
            knobs.pop(key)
        for key, (_, default) in OPTIONAL_AXES.items():
            if [knobs[key]] == default:
                knobs.pop(key)
        if self.search == "grid":
            for key in SEARCH:
                knobs.pop(key)
        if self.load == "closed":
            for key in OPEN_LOOP:
                knobs.pop(key)
        else:
            knobs.pop("max_concurrency")
            if self.client != "mlperf":
                knobs.pop("loadgen_min_duration_ms")
                knobs.pop("loadgen_min_queries")
        return knobs

    @property
    def config_id(self) -> str:
        """Readable and stable: model, mode and batch in clear, every knob in the hash."""
        knobs = json.dumps(self.knobs(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(knobs.encode()).hexdigest()[:10]
        if self.search == "capacity":
            arrivals = "" if self.load == "closed" else f"{self.load}-" if self.client != "mlperf" else "mlperf-"
            budget = f"{CAPACITY_ID_MARK}{self.p99_budget_ms:g}ms"
            return f"{self.model}-{self.mode}-b{self.batch_size}-{budget}-{arrivals}{digest}"
        return f"{self.model}-{self.mode}-b{self.batch_size}-{digest}"

    @property
    def concurrency_levels(self) -> list[int]:
        return levels_of(self.concurrency_range)

    @property
    def perf_analyzer_runs(self) -> int:
        """How many perf_analyzer runs the config may take (each retried, each under the client timeout)."""
        if self.search != "capacity":
            return 1
        if self.load != "closed":
            # every level may be measured again twice with more threads; LoadGen's two runs count as
            # its peak search's levels (bench.loadgen_run bounds them alike)
            levels = most_rate_levels(self.start_rate or 1, self.max_rate or 1, self.min_gain_percent or 1)
            return levels * (1 + LATE_RETRIES)
        return most_levels(self.max_concurrency or 1)

    @property
    def knob_group(self) -> str:
        """The configs one knob search explores together ("" for the grid): a model in one mode."""
        return f"{self.model}-{self.mode}" if self.knob_search == "coordinate" else ""

    def as_record(self) -> dict[str, object]:
        """What the sweep role reads and metadata.json keeps (a bench.records.ConfigRecord, checked); a
        grid config's is what it always was."""
        record: dict[str, object] = {"config_id": self.config_id, **self.knobs()}
        if self.search == "capacity":
            record["perf_analyzer_runs"] = self.perf_analyzer_runs
        if self.knob_group:
            record |= {"knob_group": self.knob_group, "knob_budget": self.knob_budget}
        try:
            return ConfigRecord.from_json(record).to_json()
        except RecordError as err:
            raise SweepError(f"{self.model}: config {self.config_id}: {err}") from None


def _number_ok(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _load(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SweepError(f"{path}: not valid YAML: {clipped(str(err))}") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: expected a mapping of keys")
    return data


def _validate_open_loop(path: Path, data: dict) -> None:
    load, client = data.get("load", "closed"), data.get("client", "perf_analyzer")
    if load not in LOADS:
        raise SweepError(f"{path}: load must be {' or '.join(LOADS)}, not {shown(load)}")
    if client not in CLIENTS:
        raise SweepError(f"{path}: client must be {' or '.join(CLIENTS)}, not {shown(client)}")
    if load == "closed":
        extra = sorted(k for k in OPEN_LOOP if k != "load" and k in data and k != "client")
        if extra:
            raise SweepError(f"{path}: {', '.join(extra)} only mean something with load: poisson")
        if client != "perf_analyzer":
            raise SweepError(f"{path}: client: {client} sends Poisson arrivals: it needs load: poisson")
        return
    if data.get("search", "grid") != "capacity":
        raise SweepError(f"{path}: load: {load} searches a request rate: it needs search: capacity")
    if data.get("request_distribution") != "poisson":
        raise SweepError(f"{path}: load: poisson needs request_distribution: poisson")
    start = data.get("start_rate", DEFAULT_START_RATE)
    most = data.get("max_rate", DEFAULT_MAX_RATE)
    if not 0 < start <= most <= MAX_RATE:
        raise SweepError(f"{path}: rates must be 0 < start_rate <= max_rate <= {MAX_RATE:g} requests/s")
    if not 1 <= data.get("max_threads", OPEN_LOOP["max_threads"][1]) <= MAX_CLIENT_THREADS:
        raise SweepError(f"{path}: max_threads must be 1 to {MAX_CLIENT_THREADS}")
    if not 1 <= data.get("window_requests", 1) <= 10_000_000:
        raise SweepError(f"{path}: window_requests must be 1 to 10000000")
    if data.get("loadgen_min_duration_ms", 1) < 1 or data.get("loadgen_min_queries", 1) < 1:
        raise SweepError(f"{path}: loadgen_min_duration_ms and loadgen_min_queries must be positive")


def _validate_search(path: Path, data: dict) -> None:
    for key, (kind, _) in (SEARCH | KNOB_SEARCH | OPEN_LOOP).items():
        value = data.get(key)
        if value is None:
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SweepError(f"{path}: {key} must be a {kind.__name__}, not {shown(value)}")
        if not _number_ok(value):
            raise SweepError(f"{path}: {key} must be a finite number, not {shown(value)}")
    search = data.get("search", "grid")
    knob_search = data.get("knob_search", "grid")
    if knob_search not in KNOB_SEARCHES:
        raise SweepError(f"{path}: knob_search must be {' or '.join(KNOB_SEARCHES)}, not {shown(knob_search)}")
    if knob_search != "grid" and search != "capacity":
        raise SweepError(f"{path}: knob_search: {knob_search} searches capacities: it needs search: capacity")
    if data.get("knob_budget", DEFAULT_KNOB_BUDGET) < 1:
        raise SweepError(f"{path}: knob_budget must be 1 or more configs")
    if search not in SEARCH_KINDS:
        raise SweepError(f"{path}: search must be {' or '.join(SEARCH_KINDS)}, not {shown(search)}")
    if search == "grid":
        extra = sorted(k for k in SEARCH if k != "search" and k in data)
        if extra:
            raise SweepError(f"{path}: {', '.join(extra)} only mean something with search: capacity")
        return
    budget = data.get("p99_budget_ms")
    if budget is None or budget <= 0:
        raise SweepError(f"{path}: search: capacity needs a positive p99_budget_ms (milliseconds)")
    if data.get("min_gain_percent", DEFAULT_MIN_GAIN_PERCENT) <= 0:
        raise SweepError(f"{path}: min_gain_percent must be positive")
    if not 1 <= data.get("max_concurrency", DEFAULT_MAX_CONCURRENCY) <= MAX_CONCURRENCY:
        raise SweepError(f"{path}: max_concurrency must be 1 to {MAX_CONCURRENCY}")


def _validate(path: Path, data: dict) -> None:
    known = set(AXES) | set(SCALARS) | set(SEARCH) | set(KNOB_SEARCH) | set(OPTIONAL_AXES) | set(OPEN_LOOP)
    unknown = set(data) - known
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {clipped(', '.join(sorted(map(str, unknown))))}")
    missing = (set(AXES) | set(SCALARS)) - set(data)
    if missing:
        raise SweepError(f"{path}: missing key(s) {', '.join(sorted(missing))}")
    for key, kind in AXES.items():
        values = data[key]
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: {key} must be a non-empty list")
        for value in values:
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise SweepError(f"{path}: {key} holds {shown(value)}, not a {kind.__name__}")
    for key, (kind, _) in OPTIONAL_AXES.items():
        values = data.get(key, [1])
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values)
        ):
            raise SweepError(f"{path}: {key} must be a non-empty list of {kind.__name__}s")
    if not all(1 <= k <= PORT_STEP for k in data.get("instances_per_node", [1])):
        raise SweepError(f"{path}: instances_per_node must be 1 to {PORT_STEP} (the ports of a NUMA node)")
    for key, kind in SCALARS.items():
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SweepError(f"{path}: {key} must be a {kind.__name__}, not {shown(value)}")
    checks = [
        (all(m in MODES for m in data["modes"]), f"modes must be among {', '.join(MODES)}"),
        (all(0 < b <= MAX_BATCH_SIZE for b in data["batch_sizes"]), f"batch_sizes must be 1 to {MAX_BATCH_SIZE}"),
        (
            all(0 <= t <= MAX_THREADS for t in data["intra"] + data["inter"]),
            f"intra and inter are 0 (TF decides) to {MAX_THREADS}",
        ),
        (data["measurement_interval_ms"] > 0, "measurement_interval_ms must be positive"),
        (0 < data["stability_percentage"] <= 100, "stability_percentage must be in 1..100"),
        (data["max_trials"] > 0, "max_trials must be positive"),
        (data["latency_threshold_ms"] > 0, "latency_threshold_ms must be positive"),
        (0 < data["percentile"] < 100, "percentile must be in 1..99"),
        (data["request_distribution"] in DISTRIBUTIONS, f"request_distribution must be {' or '.join(DISTRIBUTIONS)}"),
        (data["input_data"] in INPUT_DATA, "input_data must be random or real (rows from modelzoo perf-input)"),
    ]
    for ok, message in checks:
        if not ok:
            raise SweepError(f"{path}: {message}")
    _validate_search(path, data)
    _validate_open_loop(path, data)
    for text in data["concurrency_ranges"]:
        try:
            parse_range(text)
        except ValueError as err:
            raise SweepError(f"{path}: {err}") from None


def load_definition(model: str, profile: str | None = None, directory: Path = SWEEP_DIR) -> dict:
    for what, name in (("model", model), ("profile", profile or "none")):
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            raise SweepError(f"{directory}: {what} {shown(name)} is not a name (it would become a path)")
    path = directory / f"{model}.yml"
    if not path.is_file():
        raise SweepError(f"{path}: no sweep definition for model {model!r}")
    data = _load(path)
    if profile:
        profile_path = directory / "profiles" / f"{profile}.yml"
        if not profile_path.is_file():
            raise SweepError(f"{profile_path}: no such sweep profile")
        overrides = _load(profile_path)
        if "model" in overrides:
            raise SweepError(f"{profile_path}: a profile may not change the model")
        # `models: {<model>: {key: value}}` overrides one model's keys, e.g. its latency budget.
        per_model = overrides.pop("models", None) or {}
        if not isinstance(per_model, dict) or not all(isinstance(v, dict) for v in per_model.values()):
            raise SweepError(f"{profile_path}: models must map a model to the keys it overrides")
        data = {**data, **overrides, **per_model.get(model, {})}
        path = Path(f"{path} + {profile_path}")
    if data.get("model") != model:
        raise SweepError(f"{path}: model must be {model!r}, the file's name")
    _validate(path, data)
    return data


def expand(definition: dict) -> list[SweepConfig]:
    """Every combination of the axes, in a stable order."""
    scalars = {k: definition[k] for k in SCALARS if k != "model"}
    ranges = definition["concurrency_ranges"]
    if definition.get("search", "grid") == "capacity":
        # The search chooses its own levels, from 1 up to max_concurrency: that is the range it covers.
        scalars |= {k: float(definition.get(k, default)) for k, (kind, default) in SEARCH.items() if kind is float}
        scalars |= {
            "search": "capacity",
            "max_concurrency": int(definition.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)),
        }
        ranges = [f"1:{scalars['max_concurrency']}"]
        if definition.get("load", "closed") != "closed":
            # the open loop's axis is the rate: no concurrency is asked (the threads are the client's)
            scalars |= {k: kind(definition.get(k, default)) for k, (kind, default) in OPEN_LOOP.items()}
            ranges = ["1:1"]
    scalars |= {key: definition.get(key, default) for key, (_, default) in KNOB_SEARCH.items()}
    configs = []
    for mode, rng, batch, intra, inter, xla, onednn, per_node in itertools.product(
        definition["modes"],
        ranges,
        definition["batch_sizes"],
        definition["intra"],
        definition["inter"],
        definition["xla"],
        definition["onednn"],
        definition.get("instances_per_node", [1]),
    ):
        config = SweepConfig(definition["model"], mode, rng, batch, intra, inter, xla, onednn, **scalars)
        configs.append(replace(config, instances_per_node=per_node))
    for config in configs:
        config.as_record()  # every config is a record the contract accepts, or the definition is wrong
    ids = [c.config_id for c in configs]
    if len(set(ids)) != len(ids):
        raise SweepError(f"{definition['model']}: the definition lists the same config twice")
    return configs


def configs_for(models: list[str], profile: str | None = None, directory: Path = SWEEP_DIR) -> list[SweepConfig]:
    return [c for model in models for c in expand(load_definition(model, profile, directory))]


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.controller.sweeps --profile ci dlrm dssm`: the configs as a JSON list (the sweep
    role's input)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m bench.controller.sweeps", description=main.__doc__)
    parser.add_argument("models", nargs="+", help="models whose definitions to expand")
    parser.add_argument("--profile", default="", help="profile under profiles/ overriding every definition")
    parser.add_argument("--directory", type=Path, default=SWEEP_DIR, help="where the definitions are")
    args = parser.parse_args(argv)
    try:
        configs = configs_for(args.models, args.profile or None, args.directory)
    except SweepError as err:
        print(f"sweeps: {err}", file=sys.stderr)
        return 2
    print(json.dumps([c.as_record() for c in configs], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
