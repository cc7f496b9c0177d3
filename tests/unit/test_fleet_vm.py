"""The virtual machines of the simulated fleet, without booting one: their QEMU command lines, NUMA
layout, LAN names and Molecule platforms (tests/fleet_tests/test_vm.py boots them)."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest

from sim.fleet import vm_image as vm_image_module
from sim.fleet.fleet import Fleet, FleetError, FleetHost
from sim.fleet.molecule import instance_config, vm_nodes
from sim.fleet.vm import (
    VmError,
    VmPaths,
    VmShape,
    VmSpec,
    bridge_name,
    image_of,
    lan_address,
    lan_network_file,
    make_disks,
    numa_args,
    pid_of,
    qemu_command,
    tap_name,
)
from sim.fleet.vm_image import VmImage, image_dir, image_from_dir, stale_images, vm_packages, vm_recipe_hash

pytestmark = pytest.mark.unit

IMAGE = VmImage(Path("/c/root.img"), Path("/c/vmlinuz"), Path("/c/initrd.img"))


def test_each_numa_node_gets_its_socket_cpus_and_an_even_share_of_memory() -> None:
    args = numa_args(VmShape(numa=4, memory_mb=2050))
    assert args[:4] == ["-smp", "4,sockets=4,cores=1,threads=1", "-m", "2050M"]
    backends = [a for a in args if a.startswith("memory-backend-ram")]
    nodes = [a for a in args if a.startswith("node,")]
    assert backends == [f"memory-backend-ram,id=mem{i},size={s}M" for i, s in enumerate([512, 512, 512, 514])]
    assert nodes == [f"node,nodeid={i},cpus={i},memdev=mem{i}" for i in range(4)]


@pytest.mark.parametrize(("shape", "message"), [(VmShape(numa=0), "1 to 8"), (VmShape(numa=4, memory_mb=900), "256")])
def test_a_vm_shape_that_cannot_boot_is_refused(shape: VmShape, message: str) -> None:
    with pytest.raises(VmError, match=message):
        shape.check()


def test_up_refuses_a_bad_vm_shape_and_a_cpu_quota_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="--numa must be 1 to 8"):
        Fleet(tmp_path, "unit").up(1, vm=VmShape(numa=9))
    with pytest.raises(FleetError, match="--slow is a container's CPU quota"):
        Fleet(tmp_path, "unit").up(2, slow=1, vm=VmShape())


def test_the_x86_command_line_boots_the_image_kernel_with_both_disks_both_nics_and_tcg(tmp_path: Path) -> None:
    paths = VmPaths(tmp_path)
    spec = VmSpec("x86_64", "kunpeng-vm-01", VmShape(numa=2, memory_mb=1024), "tcg", "rbt-abc-01", 1)
    cmd = qemu_command(spec, IMAGE, paths, 40022)
    line = " ".join(cmd)
    assert cmd[0] == "qemu-system-x86_64" and "-machine q35 -cpu max" in line
    assert "-accel tcg,thread=multi" in line
    assert f"-kernel {IMAGE.kernel} -initrd {IMAGE.initrd}" in line
    assert "console=ttyS0 net.ifnames=0 systemd.hostname=kunpeng-vm-01" in line
    assert f"file={paths.disk},if=virtio,format=qcow2" in line
    assert f"file={paths.seed_disk},if=virtio,format=raw,readonly=on" in line
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in line  # sshd on loopback only
    assert "tap,id=lan,ifname=rbt-abc-01,script=no,downscript=no" in line
    assert f"-pidfile {paths.pid_file} -daemonize" in line


def test_kvm_takes_the_host_cpu_and_an_aarch64_vm_is_a_virt_machine_without_lan(tmp_path: Path) -> None:
    kvm = qemu_command(VmSpec("x86_64", "h", VmShape(), "kvm", None, 1), IMAGE, VmPaths(tmp_path), 1)
    assert "-cpu host" in " ".join(kvm) and "-accel kvm" in " ".join(kvm) and "tap," not in " ".join(kvm)
    arm = " ".join(qemu_command(VmSpec("aarch64", "a", VmShape(), "tcg", None, 1), IMAGE, VmPaths(tmp_path), 1))
    assert arm.startswith("qemu-system-aarch64") and "-machine virt -cpu max" in arm and "console=ttyAMA0" in arm


def test_lan_names_fit_in_an_interface_name_and_addresses_follow_the_index() -> None:
    assert len(bridge_name("a-rather-long-fleet-name")) <= 15 and len(tap_name("a-rather-long-fleet-name", 99)) <= 15
    assert bridge_name("one") != bridge_name("two")
    assert lan_address(1) == "10.89.0.11"
    assert "MACAddress=52:54:00:89:00:02" in lan_network_file(2) and "Address=10.89.0.12/24" in lan_network_file(2)


def test_a_stale_pid_file_is_not_a_running_vm(tmp_path: Path) -> None:
    paths = VmPaths(tmp_path)
    assert pid_of(paths) is None
    paths.pid_file.write_text("1\n")  # pid 1 runs, but it is not this VM's QEMU
    assert pid_of(paths) is None
    paths.pid_file.write_text("not a pid")
    assert pid_of(paths) is None


def test_a_stopped_vm_boots_again_from_the_image_its_disk_was_made_from_or_says_it_is_gone(tmp_path: Path) -> None:
    image = image_from_dir(tmp_path / "bookworm-amd64-0123456789abcdef")
    image.root.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(image.root), "1M"], check=True)
    image.kernel.write_bytes(b"kernel")
    image.initrd.write_bytes(b"initrd")
    (seed := tmp_path / "seed").mkdir()
    (paths := VmPaths(tmp_path / "host")).home.mkdir()
    make_disks(paths, image, seed)
    assert image_of(paths) == image
    image.kernel.unlink()  # the cache was cleaned while the VM was stopped
    with pytest.raises(VmError, match=r"^the image its disk was made from is gone \(.*: no vmlinuz\): down, then up$"):
        image_of(paths)
    paths.disk.write_bytes(b"not a disk")
    with pytest.raises(VmError, match="not an overlay of a VM image"):
        image_of(paths)


def test_only_older_recipes_of_the_same_arch_are_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm_image_module, "VM_CACHE", tmp_path)
    current, other_arch = image_dir("x86_64"), image_dir("aarch64")
    older = tmp_path / f"{current.name.rsplit('-', 1)[0]}-0000000000000000"
    for made in (current, other_arch, older, tmp_path / "build-abc"):
        made.mkdir()
    assert stale_images("x86_64") == [older]
    assert stale_images("aarch64") == []


def test_the_vm_image_carries_a_kernel_and_host_preps_packages_and_its_recipe_is_versioned() -> None:
    packages = vm_packages("x86_64")
    assert {"linux-image-amd64", "initramfs-tools", "nftables", "numactl", "openssh-server"} <= set(packages)
    assert "linux-image-arm64" in vm_packages("aarch64")
    assert vm_recipe_hash("x86_64") != vm_recipe_hash("aarch64")


def test_molecule_platforms_that_are_vms_map_to_vm_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(tmp_path, "unit")
    hosts = [
        FleetHost("molecule-01", platform.machine(), "molecule", "c1", 40001),
        FleetHost("molecule-vm-01", platform.machine(), "molecule", "c2", 40002, vm=True, numa=2),
    ]
    fleet.state_dir.mkdir(parents=True, exist_ok=True)
    fleet.state_file.write_text(json.dumps({"name": "unit", "hosts": [h.__dict__ for h in hosts]}))
    config = instance_config([{"name": "plain"}, {"name": "numa", "vm": 2}], fleet)
    assert [(c["instance"], c["fleet_host"]) for c in config] == [("plain", "molecule-01"), ("numa", "molecule-vm-01")]
    monkeypatch.setenv("RECBENCH_MOLECULE_VM", "2")
    assert vm_nodes({"name": "any"}) == 2
    monkeypatch.setenv("RECBENCH_MOLECULE_VM", "two")
    with pytest.raises(ValueError, match="number of NUMA nodes"):
        vm_nodes({"name": "any"})
