"""Fleet hosts that are virtual machines: their own kernels, two NUMA nodes, a LAN between them.

What a container host cannot show: numactl binding memory to a node for real, the firewall loaded
into a kernel of the host's own and refusing another host's connection, two nodes in the host fact.
One VM of two nodes boots under TCG (about half a minute), after the small fleets and beside the
benched fleet; the other host on its LAN is a network namespace of this machine's, plugged into the
fleet's bridge: a network stack and address of its own, costing no core (a second TCG VM costs one).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.fleet.fleet import Fleet
from sim.fleet.vm import LAN_PREFIX, bridge_name, tap_name
from tests.conftest import run
from tests.fleet_tests.conftest import local_fact, on_host

pytestmark = pytest.mark.fleet

PEER_ADDRESS = f"{LAN_PREFIX}.2"  # below the VMs' addresses (.11 and up)
PROBE = "timeout 5 bash -c 'echo > /dev/tcp/{}/{}' 2>/dev/null && echo open || echo closed"


@pytest.fixture(scope="module")
def lan_peer(vm_fleet: Fleet) -> Iterator[list[str]]:
    """Another host on VM_FLEET's LAN: a network namespace with a veth on the fleet's bridge at
    PEER_ADDRESS. Yields the command prefix that runs a command in it."""
    namespace = f"rbp-{vm_fleet.name}"[:15]
    outside, inside = f"{namespace[:11]}-o", f"{namespace[:11]}-i"
    subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False)
    for command in (
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
        ["ip", "link", "set", inside, "netns", namespace],
        ["ip", "link", "set", outside, "master", bridge_name(vm_fleet.name), "up"],
        ["ip", "-n", namespace, "addr", "add", f"{PEER_ADDRESS}/24", "dev", inside],
        ["ip", "-n", namespace, "link", "set", inside, "up"],
    ):
        subprocess.run(command, capture_output=True, text=True, check=True)
    yield ["ip", "netns", "exec", namespace]
    subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False)


def reach(prefix: list[str], address: str, port: int) -> str:
    """'open' if a TCP connection from PREFIX's network stack to ADDRESS:PORT is accepted, else 'closed'."""
    probe = PROBE.format(address, port)
    return subprocess.run([*prefix, "bash", "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def test_each_vm_boots_its_own_kernel_with_two_numa_nodes(vm_fleet: Fleet) -> None:
    rows = vm_fleet.status()
    assert [(r["kind"], r["state"], r["numa"], r["ssh"]) for r in rows] == [("vm", "running", "2", "ok")]
    assert {r["accel"] for r in rows} <= {"kvm", "tcg"}
    assert [r["lan"] for r in rows] == [f"{LAN_PREFIX}.11"]
    here = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    for host in vm_fleet.hosts():
        assert on_host(vm_fleet, host, "cat /proc/sys/kernel/random/boot_id").strip() != here
        assert "available: 2 nodes (0-1)" in on_host(vm_fleet, host, "numactl --hardware")
        assert on_host(vm_fleet, host, "cat /sys/devices/system/node/node1/cpulist").strip() == "1"
        # as on any server: perf_analyzer's gRPC resolves localhost, sudo the host's own name
        assert on_host(vm_fleet, host, "getent hosts localhost && getent hosts $(hostname)").count("\n") == 2


def test_host_prep_records_both_nodes_in_the_host_fact(vm_fleet: Fleet) -> None:
    done = run(["ansible-playbook", "-i", str(vm_fleet.inventory), "playbooks/site.yml", "--tags", "host_prep"])
    assert done.returncode == 0, done.stdout[-3000:]
    for host in vm_fleet.hosts():
        fact = local_fact(vm_fleet, host, "recbench_host")
        assert [(n["id"], n["cpus"], n["cpu_count"]) for n in fact["numa_nodes"]] == [(0, "0", 1), (1, "1", 1)]
        assert fact["sockets"] == 2 and all(n["memory_mb"] > 200 for n in fact["numa_nodes"])


def test_memory_bound_by_numactl_lands_on_its_node(vm_fleet: Fleet) -> None:
    host = vm_fleet.hosts()[0]
    # 64 MiB touched under --membind=1: the kernel's policy puts its pages on node 1 (numa_maps N1=).
    script = "b = bytearray(64 << 20); print(open('/proc/self/numa_maps').read())"
    maps = on_host(vm_fleet, host, f'numactl --membind=1 --physcpubind=1 python3 -c "{script}"')
    pages = {node: 0 for node in ("0", "1")}
    for node, count in re.findall(r"\bN(\d)=(\d+)", maps):
        pages[node] += int(count)
    assert pages["1"] >= 16384 and pages["0"] < pages["1"] // 10, pages  # 16384 pages of 4 KiB = 64 MiB


def test_the_numa_probe_binds_memory_and_the_firewall_refuses_another_host(
    vm_fleet: Fleet, lan_peer: list[str]
) -> None:
    probes = run(
        ["ansible-playbook", "-i", str(vm_fleet.inventory), "tests/fleet_tests/playbooks/host_probes.yml"], timeout=900
    )
    assert probes.returncode == 0, probes.stdout[-3000:]
    (server,) = vm_fleet.hosts()
    numa = local_fact(vm_fleet, server, "recbench_numa")
    assert (numa["memory_bound"], numa["binding"]) == (True, "numactl --membind --physcpubind"), numa
    firewall = local_fact(vm_fleet, server, "recbench_firewall")
    assert firewall["enforced"] is True, firewall
    # A listener on a serving port: this host reaches it, the other host is refused, the VM's sshd is not.
    port = 8500
    on_host(vm_fleet, server, f"sudo systemd-run --unit=probe-{port} python3 -m http.server --bind 0.0.0.0 {port}")
    assert on_host(vm_fleet, server, "sleep 3; " + PROBE.format("127.0.0.1", port)).strip() == "open"
    assert reach(lan_peer, server.lan_address, port) == "closed"
    assert reach(lan_peer, server.lan_address, 22) == "open"
    on_host(vm_fleet, server, f"sudo systemctl stop probe-{port}")


def test_status_notices_a_stopped_vm_and_up_boots_it_again(vm_fleet: Fleet, vm_shape) -> None:
    (victim,) = vm_fleet.hosts()
    pid = (vm_fleet.host_dir(victim) / "qemu.pid").read_text().strip()
    subprocess.run(["kill", pid], check=True)
    wait_for_exit([pid])  # QEMU takes a moment to stop its guest after SIGTERM
    rows = {row["host"]: row for row in vm_fleet.status()}
    assert (rows[victim.name]["state"], rows[victim.name]["ssh"]) == ("stopped", "unreachable")
    vm_fleet.up(1, vm=vm_shape, log=lambda _: None)
    assert all(row["ssh"] == "ok" for row in vm_fleet.status())
    # Same disk, same host key: what host_prep wrote is still there, and the old pin still holds (on
    # the new loopback port the booted VM forwards: read again from the inventory).
    (booted,) = vm_fleet.hosts()
    assert local_fact(vm_fleet, booted, "recbench_host")["numa_node_count"] == 2


def test_cli_status_says_vm_and_down_removes_the_machines_and_their_lan(vm_fleet: Fleet) -> None:
    base = ["python", "-m", "sim.fleet", "--dir", str(vm_fleet.state_dir), "--name", vm_fleet.name]
    status = run([*base, "status"])
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("kind=vm") == 1 and "numa=2" in status.stdout
    pids = [(vm_fleet.host_dir(h) / "qemu.pid").read_text().strip() for h in vm_fleet.hosts()]
    assert run([*base, "down"]).returncode == 0
    wait_for_exit(pids)  # a SIGKILLed QEMU (stop's last resort) takes a moment to exit
    assert not vm_fleet.state_dir.exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert bridge_name(vm_fleet.name) not in links and tap_name(vm_fleet.name, 1) not in links


def wait_for_exit(pids: list[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while any(qemu_runs(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(qemu_runs(pid) for pid in pids), f"QEMU {pids} still runs {seconds:.0f} s after it was stopped"


def qemu_runs(pid: str) -> bool:
    """A QEMU that exited may stay a zombie until this machine's init reaps it: its cmdline is empty."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False
