"""The simulated fleet for real: containers, SSH with pinned host keys, Ansible, host_prep."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from sim.fleet.fleet import Fleet
from sim.fleet.podman import podman, podman_succeeds
from tests.conftest import run

pytestmark = pytest.mark.fleet


def ansible_json(fleet: Fleet, pattern: str, *module_args: str) -> dict[str, dict]:
    """Run an ad-hoc module and return each host's result, as the tree callback saved it."""
    with tempfile.TemporaryDirectory() as tree:
        proc = run(["ansible", "-i", str(fleet.inventory), pattern, "--tree", tree, *module_args])
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return {path.name: json.loads(path.read_text()) for path in Path(tree).iterdir()}


def test_every_host_answers_ansible_with_host_key_checking_on(fleet: Fleet) -> None:
    results = ansible_json(fleet, "kunpeng", "-m", "ansible.builtin.ping")
    assert sorted(results) == ["kunpeng-01", "kunpeng-02"]
    assert all(r["ping"] == "pong" for r in results.values())


def test_a_slow_host_runs_under_its_cpu_quota(fleet: Fleet) -> None:
    rows = {row["host"]: row for row in fleet.status()}
    assert (rows["kunpeng-01"]["cpus"], rows["kunpeng-02"]["cpus"]) == ("unlimited", "1")
    quota = podman("inspect", "--format", "{{.HostConfig.NanoCpus}}", fleet.hosts()[1].container).strip()
    assert quota == str(10**9)  # podman --cpus 1: one core's worth of CFS quota


def test_each_host_has_its_own_pinned_host_key(fleet: Fleet) -> None:
    entries = [line.split() for line in fleet.known_hosts.read_text().splitlines()]
    assert len(entries) == 2
    assert len({key for _, _, key in entries}) == 2, "hosts must not share a host key"
    # What the host really presents is what known_hosts pins.
    for host in fleet.hosts():
        scanned = subprocess.run(
            ["ssh-keyscan", "-t", "ed25519", "-p", str(host.port), "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
        assert scanned[-1] in {key for _, _, key in entries}


def test_a_host_presenting_another_key_is_refused(fleet: Fleet, tmp_path) -> None:
    first = fleet.hosts()[0]
    lines = fleet.known_hosts.read_text().splitlines()
    # Pin the second host's key at the first host's address: ssh must refuse to log in.
    forged = [f"[127.0.0.1]:{first.port} {lines[1].split(' ', 1)[1]}"]
    (tmp_path / "known_hosts").write_text("\n".join(forged) + "\n")
    proc = subprocess.run(
        [
            "ssh",
            "-o",
            f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-i",
            str(fleet.client_key),
            "-p",
            str(first.port),
            "ansible@127.0.0.1",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert "HOST IDENTIFICATION HAS CHANGED" in proc.stderr or "verification failed" in proc.stderr


def test_host_prep_converges_and_a_second_run_changes_nothing(fleet: Fleet) -> None:
    first = run(["ansible-playbook", "-i", str(fleet.inventory), "playbooks/site.yml", "--tags", "host_prep"])
    assert first.returncode == 0, first.stdout[-3000:]
    second = run(["ansible-playbook", "-i", str(fleet.inventory), "playbooks/site.yml", "--tags", "host_prep"])
    assert second.returncode == 0, second.stdout[-3000:]
    recap = [line for line in second.stdout.splitlines() if "ok=" in line and "changed=" in line]
    assert len(recap) == 2
    assert all("changed=0" in line and "failed=0" in line for line in recap), recap
    facts = ansible_json(fleet, "kunpeng", "-m", "ansible.builtin.setup", "-a", "filter=ansible_local")
    for result in facts.values():
        host_fact = result["ansible_facts"]["ansible_local"]["recbench_host"]
        assert host_fact["arch"] == "x86_64"
        assert host_fact["numa_nodes"]


def test_status_notices_a_stopped_host_and_up_brings_it_back(fleet: Fleet) -> None:
    assert all(row["ssh"] == "ok" for row in fleet.status())
    victim = fleet.hosts()[0]
    podman("stop", "--time", "2", victim.container)
    rows = {row["host"]: row for row in fleet.status()}
    assert rows[victim.name]["state"] == "exited"
    assert rows[victim.name]["ssh"] == "unreachable"
    fleet.up(2, group="kunpeng", log=lambda _: None)
    assert all(row["ssh"] == "ok" for row in fleet.status())
    # The restarted host kept its identity: the old known_hosts pin still holds.
    assert ansible_json(fleet, victim.name, "-m", "ansible.builtin.ping")[victim.name]["ping"] == "pong"


def test_cli_status_and_down(fleet: Fleet) -> None:
    base = ["python", "-m", "sim.fleet", "--dir", str(fleet.state_dir), "--name", fleet.name]
    status = run([*base, "status"])
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("ssh=ok") == 2
    containers = [h.container for h in fleet.hosts()]
    assert run([*base, "down"]).returncode == 0
    assert not any(podman_succeeds("container", "exists", c) for c in containers)
    assert not fleet.state_dir.exists()
    fleet.up(2, group="kunpeng", log=lambda _: None)  # leave the module's fleet as it found it


def test_an_emulated_aarch64_host_answers_ansible_as_an_aarch64_machine(arm_fleet: Fleet) -> None:
    # Roles on such a host (host_prep, tensorflow, perf_analyzer) are the aarch64 Molecule scenarios'
    # work: they bring up their hosts through this same Fleet.up.
    facts = ansible_json(arm_fleet, "kunpeng", "-m", "ansible.builtin.setup", "-a", "gather_subset=!all")
    (result,) = facts.values()
    assert result["ansible_facts"]["ansible_architecture"] == "aarch64"
    assert result["ansible_facts"]["ansible_python"]["version"]["major"] == 3
