"""The move to bench/ changed no result: today's expander gives the same config ids as the code
before it, and today's sweep runner writes the same files and metadata keys, which the collector
reads alike (fixture: tests/fixtures/tree_v1, written by commit 089d409)."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from bench import facts
from bench.controller.sweeps import configs_for
from bench.sweep import run_job
from collect.ingest import ingest
from collect.results import instance_dirs, load_instance
from collect.store import Store
from tests.conftest import REPO

pytestmark = pytest.mark.unit

OLD = REPO / "tests" / "fixtures" / "tree_v1"
CSV = REPO / "tests" / "fixtures" / "perf_analyzer" / "verbose.csv"


def test_config_ids_and_knobs_are_those_of_the_old_expander() -> None:
    old = json.loads((OLD / "configs.json").read_text())
    for profile, records in old.items():
        new = [c.as_record() for c in configs_for(facts.MODELS, None if profile == "default" else profile)]
        assert new == records, profile


def executable(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def new_tree(tmp_path: Path) -> Path:
    """The fixture's two instances, written by today's runner (perf_analyzer's CSV output copied in,
    as the fixture's maker did; the real perf_analyzer path is tested in tests/models)."""
    perf_analyzer = executable(
        tmp_path / "pa.sh",
        f'#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -f ] && out=$2; shift; done\ncp {CSV} "$out"\necho done\n',
    )
    fact = executable(tmp_path / "fact.sh", '#!/bin/sh\necho \'{"arch": "x86_64"}\'\n')
    (config,) = [c for c in configs_for(["dlrm"], "ci") if c.mode == "entire"]
    record = config.as_record() | {"concurrency_range": "1:4:1"}
    root = tmp_path / "tree"
    for host, error in (("host-a", None), ("host-b", "tfserving@dlrm-0: not ready after 60 s")):
        job = {
            "run_id": "old-run",
            "host": host,
            "model": "dlrm",
            "config": record,
            "results_dir": str(root / "old-run" / host / "dlrm" / record["config_id"]),
            "instances": [
                {
                    "name": "numa0",
                    "unit": "dlrm-0",
                    "numa_node": 0,
                    "port": facts.BASE_PORT,
                    "server_cpus": "0",
                    "client_cpus": "0",
                    "note": "",
                }
            ],
            "perf_analyzer": perf_analyzer,
            "timeout_s": 30,
            "retries": 1,
            "host_fact": fact,
            "metadata": {"sweep_profile": "ci", "versions": {"perf_analyzer": "2.46.0"}, "served_version": 1},
        } | ({"server_error": error} if error else {})
        run_job(job)
    return root


def files_and_keys(root: Path) -> dict[str, list[str]]:
    return {
        str(path.relative_to(root)): sorted(json.loads(path.read_text())) if path.suffix == ".json" else []
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# Keys the runner added since the v1 tree, each optional to the collector (additive, same schema).
ADDED_SINCE_V1 = {"host_facts_start"}  # the host fact read when the measurement began (twins)


def test_the_runner_writes_the_same_files_and_metadata_keys(tmp_path: Path) -> None:
    new = files_and_keys(new_tree(tmp_path))
    assert {path: [k for k in keys if k not in ADDED_SINCE_V1] for path, keys in new.items()} == files_and_keys(
        OLD / "tree"
    )
    measured = [keys for path, keys in new.items() if path.endswith("metadata.json") and "attempts" in keys]
    assert any("host_facts_start" in keys for keys in measured)


def test_the_collector_reads_both_trees_alike(tmp_path: Path) -> None:
    old_tree = tmp_path / "old"
    shutil.copytree(OLD / "tree", old_tree)
    trees = {"old": old_tree, "new": new_tree(tmp_path)}
    read = {}
    for name, root in trees.items():
        results = [load_instance(d) for d in instance_dirs(root)]
        read[name] = [
            (r.key, r.status, [(p.concurrency, p.throughput, p.p99_us) for p in r.points], r.metadata["host_facts"])
            for r in results
        ]
        with Store(tmp_path / f"{name}.duckdb") as store:
            report = ingest(root, store)
        assert (report.added, report.problems) == (2, []), name
    assert read["new"] == read["old"]
