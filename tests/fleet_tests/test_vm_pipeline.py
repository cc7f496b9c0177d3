"""The seed's method for real, on a virtual machine with two NUMA nodes: site, train, sweep (`single`
and `entire`) and fetch for one model, then each server's memory read from /proc/<pid>/numa_maps;
and an aarch64 VM (qemu-system-aarch64), where memory binding and the firewall are the guest kernel's,
which a qemu-user host could do neither of.

About three quarters of an hour under TCG (TensorFlow is installed and imported in an emulated CPU),
so it is not in scripts/test.sh: run it by hand, alone on the machine, with the test artifact store
filled:
    RECBENCH_ARTIFACTS=/var/tmp/recbench-artifacts python -m pytest -m vm_pipeline -v
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import records
from sim.fleet.fleet import Fleet
from sim.fleet.vm import VmShape
from tests.conftest import run
from tests.fleet_tests.conftest import local_fact, on_host

pytestmark = pytest.mark.vm_pipeline

MODEL = "dlrm"
RUN_ID = "numa"
STORE = os.environ.get("RECBENCH_ARTIFACTS", "/var/tmp/recbench-artifacts")


@pytest.fixture(scope="module")
def piped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Path]]:
    """A two-node VM through the whole pipeline for MODEL; the results fetched home."""
    work = tmp_path_factory.mktemp("numa")
    fleet = Fleet(work / "fleet", name="pytest-numa")
    fleet.down(log=lambda _: None)
    fleet.up(1, vm=VmShape(numa=2, memory_mb=4096), log=lambda _: None)
    results = work / "results"
    try:
        for stage in ("site", "train", "sweep", "fetch"):
            extra = [] if stage == "site" else ["-e", json.dumps({"recbench_models": [MODEL]})]
            done = run(
                ["ansible-playbook", "-i", str(fleet.inventory), f"playbooks/{stage}.yml",
                 "-e", "@scripts/simulated-fleet.yml", "-e", f"recbench_artifact_dir={STORE}",
                 "-e", f"recbench_results_dir={results}", "-e", f"recbench_run_id={RUN_ID}", *extra],
                timeout=3600,
            )  # fmt: skip
            assert done.returncode == 0, (stage, done.stdout[-3000:], done.stderr[-1500:])
        yield fleet, results
    finally:
        fleet.down(log=lambda _: None)


def instance_records(fleet: Fleet, results: Path) -> list[records.InstanceRecord]:
    (host,) = fleet.hosts()
    paths = sorted((results / RUN_ID / host.name / MODEL).glob("*/*/metadata.json"))
    return [records.load(records.InstanceRecord, p.read_text()) for p in paths]


def test_single_and_entire_place_servers_and_clients_on_their_nodes(piped) -> None:
    fleet, results = piped
    placed: dict[str, list[tuple]] = {}
    for record in instance_records(fleet, results):
        assert record.status == "complete", (record.config_id, record.instance_name, record.attempts)
        spec = record.instance
        assert isinstance(spec, records.InstanceSpec)
        placed.setdefault(record.config.mode, []).append(
            (spec.name, spec.numa_node, spec.extra["server_cpus"], spec.extra["client_cpus"])
        )
        machine = record.extra["machine"]
        assert machine["numa_binding"]["memory_bound"] is True, machine["numa_binding"]
        assert machine["firewall"]["enforced"] is True, machine["firewall"]
    # single: the server on node 0 (CPU 0), its client on node 1 (CPU 1); entire: one of each per node.
    assert sorted(set(placed["single"])) == [("numa0", 0, "0", "1")]
    assert sorted(set(placed["entire"])) == [("numa0", 0, "0", "0"), ("numa1", 1, "1", "1")]


def test_the_machine_figure_of_entire_is_the_sum_of_its_nodes(piped) -> None:
    from collect import queries
    from collect.cli import reading

    _, results = piped
    db = results / "recbench.duckdb"
    ingest = run(["python", "-m", "collect", "ingest", str(results), "--db", str(db)], timeout=600)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    with reading(db) as store:
        machines = queries.machines(store, [RUN_ID])
        instances = store.query("SELECT config_id, best_throughput FROM instances WHERE run_id = ?", [RUN_ID])
    entire = machines[machines["mode"] == "entire"]
    assert len(entire) >= 1 and set(entire["instances"]) == {2}, machines
    for row in entire.itertuples():
        parts = instances[instances["config_id"] == row.config_id]["best_throughput"]
        assert len(parts) == 2 and all(parts > 0) and row.throughput == pytest.approx(parts.sum()), (row, parts)


def test_each_servers_memory_is_on_its_own_node(piped) -> None:
    fleet, _ = piped
    (host,) = fleet.hosts()
    served = run(
        ["ansible-playbook", "-i", str(fleet.inventory), "tests/fleet_tests/playbooks/serve_per_node.yml",
         "-e", f"model={MODEL}", "-e", f"recbench_artifact_dir={STORE}"],
        timeout=1800,
    )  # fmt: skip
    assert served.returncode == 0, served.stdout[-3000:]
    for node in (0, 1):
        pid = on_host(fleet, host, f"sudo systemctl show -p MainPID --value tfserving@{MODEL}-{node}.service").strip()
        maps = on_host(fleet, host, f"sudo cat /proc/{pid}/numa_maps")
        pages = anonymous_pages_by_node(maps)
        own, other = pages.get(node, 0), pages.get(1 - node, 0)
        # The server's own memory (heap, TensorFlow's arenas, stacks): on its node, bound there.
        assert own > 10_000 and other < own // 20, (node, pages)
        assert f"bind:{node}" in maps, maps[:2000]


def anonymous_pages_by_node(numa_maps: str) -> dict[int, int]:
    """Pages of a process's anonymous mappings per node (page-cache pages of shared libraries are on
    whichever node first read them, so they say nothing of the process's policy)."""
    pages: dict[int, int] = {}
    for line in numa_maps.splitlines():
        if " anon=" not in line:
            continue
        for node, count in re.findall(r"\bN(\d+)=(\d+)", line):
            pages[int(node)] = pages.get(int(node), 0) + int(count)
    return pages


@pytest.fixture(scope="module")
def arm_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One aarch64 VM of two NUMA nodes (qemu-system-aarch64 -M virt under TCG)."""
    fleet = Fleet(tmp_path_factory.mktemp("armvm") / "fleet", name="pytest-armvm")
    fleet.down(log=lambda _: None)
    fleet.up(0, aarch64=1, vm=VmShape(numa=2, memory_mb=2048), log=lambda _: None)
    yield fleet
    fleet.down(log=lambda _: None)


def test_an_aarch64_vm_binds_memory_and_closes_its_ports_where_qemu_user_could_not(arm_vm: Fleet) -> None:
    (host,) = arm_vm.hosts()
    assert on_host(arm_vm, host, "uname -m").strip() == "aarch64"
    host_prep = ["playbooks/site.yml", "--tags", "host_prep"]
    for playbook in (host_prep, ["tests/fleet_tests/playbooks/host_probes.yml"]):
        done = run(["ansible-playbook", "-i", str(arm_vm.inventory), *playbook], timeout=3600)
        assert done.returncode == 0, (playbook, done.stdout[-3000:])
    assert local_fact(arm_vm, host, "recbench_host")["numa_node_count"] == 2
    assert local_fact(arm_vm, host, "recbench_numa")["memory_bound"] is True
    assert local_fact(arm_vm, host, "recbench_firewall")["enforced"] is True
    script = "b = bytearray(64 << 20); print(open('/proc/self/numa_maps').read())"
    maps = on_host(arm_vm, host, f'numactl --membind=1 --physcpubind=1 python3 -c "{script}"', timeout=600)
    pages = anonymous_pages_by_node(maps)
    assert pages.get(1, 0) >= 16384 and pages.get(0, 0) < pages[1] // 10, pages
