"""The recbench_host local fact, run for real against made-up /sys and /proc trees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

FACT = REPO / "roles/host_prep/files/recbench_host.fact"

KUNPENG_CPUINFO = """processor\t: 0
BogoMIPS\t: 200.00
CPU implementer\t: 0x48
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd01
"""


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def kunpeng_tree(root: Path) -> None:
    """Two sockets x 2 NUMA nodes x 4 cores, one thread each, like a (very small) Kunpeng 920."""
    write(root, "sys/devices/system/cpu/online", "0-15\n")
    for cpu in range(16):
        topo = f"sys/devices/system/cpu/cpu{cpu}/topology"
        write(root, f"{topo}/physical_package_id", f"{cpu // 8}\n")
        write(root, f"{topo}/core_id", f"{cpu}\n")
    write(root, "sys/devices/system/node/online", "0-3\n")
    for node in range(4):
        write(root, f"sys/devices/system/node/node{node}/cpulist", f"{node * 4}-{node * 4 + 3}\n")
        write(
            root,
            f"sys/devices/system/node/node{node}/meminfo",
            f"Node {node} MemTotal:       {(node + 1) * 1048576} kB\nNode {node} MemFree: 1 kB\n",
        )
    write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "ondemand\n")
    write(root, "sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n")
    write(root, "sys/kernel/mm/transparent_hugepage/defrag", "[always] defer madvise never\n")
    write(root, "proc/cpuinfo", KUNPENG_CPUINFO)
    write(root, "proc/meminfo", "MemTotal:       10485760 kB\nMemFree: 1 kB\n")
    write(root, "etc/os-release", 'NAME="openEuler"\nPRETTY_NAME="openEuler 22.03 (LTS-SP1)"\n')
    write(root, "proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda2 iommu.passthrough=1\n")
    write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq", "2600000\n")
    write(root, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "2600000\n")
    write(root, "proc/sys/vm/swappiness", "60\n")
    write(root, "proc/sys/kernel/numa_balancing", "1\n")
    write(root, "proc/sys/kernel/sched_autogroup_enabled", "1\n")
    write(root, "sys/devices/system/cpu/vulnerabilities/spectre_v2", "Mitigation: CSV2, BHB\n")
    write(root, "sys/class/dmi/id/bios_version", "1.79\n")


def read_fact(root: Path) -> dict:
    out = subprocess.run([sys.executable, str(FACT), str(root)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_describes_a_multi_socket_numa_host(tmp_path: Path) -> None:
    kunpeng_tree(tmp_path)
    fact = read_fact(tmp_path)
    assert fact["cpu_model"] == "HiSilicon Kunpeng 920"
    assert (fact["sockets"], fact["cores"], fact["threads"], fact["threads_per_core"]) == (2, 16, 16, 1)
    assert fact["numa_node_count"] == 4
    assert fact["numa_source"] == "sysfs"
    assert [n["cpus"] for n in fact["numa_nodes"]] == ["0-3", "4-7", "8-11", "12-15"]
    assert [n["cpu_count"] for n in fact["numa_nodes"]] == [4, 4, 4, 4]
    assert [n["memory_mb"] for n in fact["numa_nodes"]] == [1024, 2048, 3072, 4096]
    assert fact["memory_mb"] == 10240
    assert fact["governor"] == "ondemand"
    assert fact["thp"] == {"enabled": "never", "defrag": "always"}
    assert fact["os"] == "openEuler 22.03 (LTS-SP1)"
    # what may explain a difference between twins
    assert fact["cmdline"] == "BOOT_IMAGE=/vmlinuz root=/dev/sda2 iommu.passthrough=1"
    assert fact["cpufreq"]["max_khz"] == fact["cpufreq"]["hardware_max_khz"] == "2600000"
    assert fact["sysctl"]["vm.swappiness"] == "60" and fact["sysctl"]["kernel.numa_balancing"] == "1"
    assert fact["sysctl"]["kernel.sched_autogroup_enabled"] == "1"
    assert fact["sysctl"]["vm.zone_reclaim_mode"] is None  # absent here: recorded as unknown
    assert fact["mitigations"] == {"spectre_v2": "Mitigation: CSV2, BHB"}
    assert fact["firmware"]["bios_version"] == "1.79"


def test_counts_hyperthreads_as_threads_not_cores(tmp_path: Path) -> None:
    write(tmp_path, "sys/devices/system/cpu/online", "0-3\n")
    for cpu in range(4):
        write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id", "0\n")
        write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/topology/core_id", f"{cpu % 2}\n")
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8380\n")
    fact = read_fact(tmp_path)
    assert (fact["cores"], fact["threads"], fact["threads_per_core"]) == (2, 4, 2)
    assert fact["cpu_model"] == "Intel(R) Xeon(R) Platinum 8380"


def test_a_kernel_without_numa_is_one_node_of_the_whole_machine(tmp_path: Path) -> None:
    write(tmp_path, "sys/devices/system/cpu/online", "0-7\n")
    write(tmp_path, "proc/meminfo", "MemTotal:       2097152 kB\n")
    fact = read_fact(tmp_path)
    assert fact["numa_source"] == "synthesized"
    assert fact["numa_nodes"] == [{"id": 0, "cpus": "0-7", "cpu_count": 8, "memory_mb": 2048}]
    assert fact["governor"] is None
    assert fact["thp"] == {"enabled": None, "defrag": None}


def test_unknown_arm_parts_are_named_by_their_ids(tmp_path: Path) -> None:
    write(tmp_path, "sys/devices/system/cpu/online", "0\n")
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nCPU implementer\t: 0x61\nCPU part\t: 0x022\n")
    assert read_fact(tmp_path)["cpu_model"] == "ARM implementer 0x61 part 0x022"


def test_matches_this_machine(tmp_path: Path) -> None:
    """On the real / the fact agrees with what the kernel reports here."""
    out = subprocess.run([sys.executable, str(FACT)], capture_output=True, text=True, check=True)
    fact = json.loads(out.stdout)
    online = Path("/sys/devices/system/cpu/online").read_text().strip()
    assert fact["threads"] == len(read_fact_cpus(online))
    assert sum(n["cpu_count"] for n in fact["numa_nodes"]) == fact["threads"]


def read_fact_cpus(cpulist: str) -> list[int]:
    cpus: list[int] = []
    for chunk in cpulist.split(","):
        low, _, high = chunk.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus
