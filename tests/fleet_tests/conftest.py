"""Fixtures that bring up real simulated hosts (podman containers booted with systemd).

scripts/test.sh runs the fleet tests in two pytest processes side by side: the benched fleet
(test_bench, test_serving) and the small fleets (test_fleet, test_pull). Their hosts share names
(kunpeng-01, ...), so the second keeps Ansible's fact cache apart (ANSIBLE_CACHE_PLUGIN_CONNECTION).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.facts import RESULTS_ROOT
from sim.fleet.fleet import Fleet, FleetHost
from sim.fleet.vm import VmShape
from tests.conftest import run
from tests.results_tree import place


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two native hosts in group kunpeng, the second with a CPU quota (a slow host, here one core so
    the tests' own time does not grow), torn down after the module."""
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), name="pytest")
    fleet.down(log=lambda _: None)
    fleet.up(2, group="kunpeng", slow=1, slow_cpus=1.0)
    yield fleet
    fleet.down(log=lambda _: None)


@pytest.fixture(scope="module")
def arm_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One emulated aarch64 host (qemu-user-static), torn down after the module."""
    fleet = Fleet(tmp_path_factory.mktemp("armfleet"), name="pytest-arm")
    fleet.down(log=lambda _: None)
    fleet.up(0, group="kunpeng", aarch64=1)
    yield fleet
    fleet.down(log=lambda _: None)


@pytest.fixture(scope="module")
def vm_shape() -> VmShape:
    """Two NUMA nodes of one CPU and 384 MiB each: enough for the probes, cheap under TCG."""
    return VmShape(numa=2, memory_mb=768)


@pytest.fixture(scope="module")
def vm_fleet(tmp_path_factory: pytest.TempPathFactory, vm_shape: VmShape) -> Iterator[Fleet]:
    """One virtual machine of VM_SHAPE on the fleet LAN, torn down after the module (one, not two:
    under TCG each VM costs a core, and the suite has none to spare)."""
    fleet = Fleet(tmp_path_factory.mktemp("vmfleet"), name="pytest-vm")
    fleet.down(log=lambda _: None)
    fleet.up(1, vm=vm_shape, log=lambda _: None)
    yield fleet
    fleet.down(log=lambda _: None)


@pytest.fixture(scope="session")
def bench_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two native hosts shared by the pipeline and serving tests, torn down at the end of the session.

    Installing the software under test (site.yml) takes minutes; whoever comes second finds it
    installed and site.yml changes nothing."""
    fleet = Fleet(tmp_path_factory.mktemp("benchfleet"), name="pytest-bench")
    fleet.down(log=lambda _: None)
    fleet.up(2, log=lambda _: None)
    yield fleet
    fleet.down(log=lambda _: None)


@pytest.fixture(scope="session")
def sited() -> set[str]:
    """Names of the fleets on which site.yml has run to completion in this session: others skip it."""
    return set()


def on_host(fleet: Fleet, host: FleetHost, command: str, timeout: float = 120) -> str:
    """COMMAND's output on HOST of FLEET over SSH (its key pinned); the test fails on a non-zero exit."""
    proc = subprocess.run(fleet.ssh_command(host, command), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (host.name, command, proc.stderr[-1500:])
    return proc.stdout


def local_fact(fleet: Fleet, host: FleetHost, name: str) -> dict:
    """A local fact of HOST as Ansible reads it: an executable fact's output, or the file's JSON."""
    path = f"/etc/ansible/facts.d/{name}.fact"
    return json.loads(on_host(fleet, host, f"if [ -x {path} ]; then {path}; else cat {path}; fi"))


def inventory_of(fleet: Fleet) -> Path:
    return fleet.inventory


def adhoc(fleet: Fleet, hosts: str, module: str, args: str) -> None:
    """One Ansible module on HOSTS of FLEET, as root; the test fails with Ansible's output otherwise."""
    done = run(["ansible", "-i", str(fleet.inventory), hosts, "-b", "-m", module, "-a", args])
    assert done.returncode == 0, done.stdout[-2000:]


def results_on_hosts(fleet: Fleet, local: Path, run_id: str, instances: list[tuple[str, str, list[int]]]) -> None:
    """Every host of FLEET holds, under its results root, run RUN_ID's complete dlrm-entire-b16-x
    INSTANCES ((instance, perf_analyzer fixture CSV, levels reached)), made in LOCAL as the sweep runner
    makes them and copied in one Ansible call."""
    for host in fleet.hosts():
        for instance, csv, levels in instances:
            place(
                local / host.name, run_id, host.name, "dlrm", "dlrm-entire-b16-x", instance, csv, "complete", levels, []
            )
    source = f"{local}/{{{{ inventory_hostname }}}}/"
    adhoc(fleet, "all", "ansible.builtin.copy", f"src={source} dest={RESULTS_ROOT}/ directory_mode=0755 mode=0644")
