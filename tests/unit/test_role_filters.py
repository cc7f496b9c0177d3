"""The filters that replaced the Jinja programs in role vars: train pinning, options and data, the
servers of a sweep config, the served versions, and tfserving's instance defaults."""

from __future__ import annotations

import json

import pytest

from bench import facts
from bench.controller import placement
from bench.knobsearch import recorded_capacity
from tests.conftest import load_plugin

pytestmark = pytest.mark.unit

train = load_plugin("roles/train/filter_plugins/train.py")
sweep = load_plugin("roles/sweep/filter_plugins/sweep_instances.py")
tfserving = load_plugin("roles/tfserving/filter_plugins/tfserving.py")
recbench = load_plugin("plugins/filter/recbench_facts.py")

TWO_NODES = [{"id": 1, "cpus": "4-7"}, {"id": 0, "cpus": "0-3"}]


def test_train_modes_pin_single_to_node_0_and_entire_to_every_cpu() -> None:
    assert train.train_modes(["single", "entire"], TWO_NODES) == [
        {"mode": "single", "cpus": "0-3", "note": ""},
        {"mode": "entire", "cpus": "0-3,4-7", "note": ""},
    ]
    (one,) = train.train_modes(["entire"], [{"id": 0, "cpus": "0-1"}])
    assert one["note"] == train.ONE_NODE_NOTE
    with pytest.raises(ValueError, match="no NUMA node"):
        train.train_modes(["single"], [])
    with pytest.raises(ValueError, match="not single or entire"):
        train.train_modes(["both"], TWO_NODES)


def test_train_options_keep_the_seed_and_drop_zeros() -> None:
    options = {"seed": 0, "steps": 0, "epochs": 2, "batch_size": 0, "intra": 4, "inter": 0}
    assert train.train_options(options) == {"seed": 0, "epochs": 2, "intra": 4}


def test_train_data_follows_each_models_data_set() -> None:
    data = train.train_data(["dlrm", "dssm"], "/d", facts.MODEL_DATASETS)
    assert data == {
        "dlrm": {"train": "/d/criteo/train.csv", "eval": "/d/criteo/eval.csv"},
        "dssm": {"train": "/d/taobao/train.csv", "eval": "/d/taobao/eval.csv"},
    }


def test_sweep_server_instances_carry_the_configs_knobs() -> None:
    config = {"model": "dlrm", "mode": "entire", "intra": 2, "inter": 1, "xla": True, "onednn": False}
    instances = placement.sweep_instances(config, TWO_NODES, facts.BASE_PORT)
    servers = placement.sweep_server_instances(instances, config, "/m")
    assert [(s["numa_node"], s["port"], s["cpus"]) for s in servers] == [(0, 8500, "0-3"), (1, 8510, "4-7")]
    assert all(s["base_path"] == "/m/dlrm" and s["intra"] == 2 and s["xla"] is True for s in servers)


def test_served_versions_are_the_highest_numeric_directory() -> None:
    found = [
        {"item": "dlrm", "files": [{"path": "/m/dlrm/1/saved_model.pb"}, {"path": "/m/dlrm/12/saved_model.pb"}]},
        {"item": "dssm", "files": [{"path": "/m/dssm/tmp/saved_model.pb"}]},
        {"item": "dffm", "files": []},
    ]
    assert sweep.sweep_served_versions(found) == {"dlrm": 12, "dssm": None, "dffm": None}


def test_tfserving_instances_fill_in_the_port_rule_and_models_dir() -> None:
    filled = tfserving.tfserving_instances(
        [{"model": "dlrm", "numa_node": 2}, {"model": "dssm", "port": 9000, "base_path": "/x"}],
        facts.BASE_PORT,
        facts.MODELS_DIR,
    )
    assert [(i["name"], i["port"], i["base_path"]) for i in filled] == [
        ("dlrm-2", facts.port_of(2), f"{facts.MODELS_DIR}/dlrm"),
        ("dssm-0", 9000, "/x"),
    ]
    assert filled[0] | {"name": "", "port": 0, "base_path": ""} == {
        "name": "",
        "model": "dlrm",
        "numa_node": 2,
        "cpus": "",
        "port": 0,
        "base_path": "",
        "intra": 0,
        "inter": 0,
        "xla": False,
        "onednn": None,
        "batching_parameters": "",
        "extra_flags": [],
    }
    with pytest.raises(ValueError, match="names no model"):
        tfserving.tfserving_instances([{"numa_node": 0}], 8500, "/m")


def test_recbench_fact_names_the_known_facts_when_asked_for_another() -> None:
    assert recbench.recbench_fact("models") == facts.MODELS
    assert recbench.recbench_port(3) == facts.BASE_PORT + 3 * facts.PORT_STEP
    with pytest.raises(Exception, match=r"no recbench fact 'modles'.*models"):
        recbench.recbench_fact("modles")


def test_artifact_store_wheelhouses_per_arch() -> None:
    store = load_plugin("roles/artifact_store/filter_plugins/artifact_store.py")
    versions = {
        "tensorflow": "2.15.1",
        "tritonclient": "2.46.0",
        "cuda_runtime": "12.9",
        "pyyaml": "6.0.3",
        "python": "3.11",
        "loadgen": "6.0.17",
    }
    requirements = {
        "x86_64": ["tensorflow-cpu==2.15.1"],
        "aarch64": ["tensorflow==2.15.1", "tensorflow-cpu-aws==2.15.1"],
    }
    houses = store.artifact_store_wheelhouses(["x86_64", "aarch64"], versions, requirements)
    assert [(h["component"], h["arch"]) for h in houses] == [
        (c, a) for a in ("x86_64", "aarch64") for c in ("tensorflow", "perf_analyzer", "pyyaml")
    ]
    assert houses[3]["requirements"] == ["tensorflow==2.15.1", "tensorflow-cpu-aws==2.15.1"]
    assert houses[0]["no_deps"] == ["tensorflow-serving-api==2.15.1"]
    assert houses[1]["no_deps"] == ["tritonclient==2.46.0", "nvidia-cuda-runtime-cu12==12.9"]
    assert all(h["python"] == "3.11" for h in houses)
    with_loadgen = store.artifact_store_wheelhouses(["x86_64", "aarch64"], versions, requirements, ["x86_64"])
    assert [(h["component"], h["arch"]) for h in with_loadgen if h not in houses] == [("loadgen", "x86_64")]
    assert with_loadgen[3]["no_deps"] == ["mlcommons-loadgen==6.0.17"]
    with pytest.raises(ValueError, match="riscv64"):
        store.artifact_store_wheelhouses(["riscv64"], versions, requirements)


def search_record(capacity: float, valid: bool = True) -> dict:
    level = {"level": 4, "throughput": capacity, "p50_us": 1000.0, "p99_us": 2000.0, "requests": 5000}
    return {"kind": "capacity", "valid": valid, "capacity": capacity, "level": level, "p99_budget_ms": 10.0}


def test_a_configs_capacity_is_the_sum_of_its_valid_instances_or_none(tmp_path) -> None:
    def recorded(*searches: dict) -> list[str]:
        for i, search in enumerate(searches):
            (tmp_path / f"numa{i}").mkdir(exist_ok=True)
            (tmp_path / f"numa{i}" / "metadata.json").write_text(json.dumps({"search": search}))
        return [f"numa{i}" for i in range(len(searches))]

    ok = search_record(100.0)
    assert recorded_capacity(tmp_path, recorded(ok, search_record(50.5))) == 150.5
    assert recorded_capacity(tmp_path, recorded(ok, search_record(80.0, valid=False))) is None
    # a record the contract refuses (a NaN capacity, a string for a number) is no capacity to trust
    assert recorded_capacity(tmp_path, recorded(ok, {**search_record(1.0), "capacity": "lots"})) is None
    assert recorded_capacity(tmp_path, recorded(ok, {**search_record(1.0), "capacity": float("nan")})) is None
    assert recorded_capacity(tmp_path, [*recorded(ok), "numa9"]) is None  # not recorded
    assert recorded_capacity(tmp_path, []) is None
