"""Fleet hosts that are QEMU virtual machines: a real kernel with K NUMA nodes, each its own CPUs and memory.

A container shares this machine's one-node kernel; a VM has its own, so its memory policy (numactl
--membind), netfilter, sysctls and transparent huge pages are the guest's, as on a bare-metal host.
Each VM boots Debian's kernel and initramfs from the cached image (sim/fleet/vm_image.py) with:
  - one NUMA node per `-numa node` (CPUS_PER_NODE CPUs, memory split evenly), one socket per node;
  - a qcow2 overlay of the image's root disk, and a small seed disk (its host keys, login key, address);
  - a user-mode NIC (slirp) forwarding a loopback port to sshd, which is also its way out (apt);
  - a NIC on the fleet LAN, a Linux bridge of this fleet with one tap per VM, where the VMs reach
    each other as the hosts of a real fleet do (the firewall sees another host's address);
  - KVM where a guest really runs under it, TCG otherwise (the probe below; the status says which).
The QEMU process is the machine: it daemonizes, its pid file says whether the host runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.fleet.vm_image import SEED_LABEL, VM_CACHE, VmImage, image_from_dir
from sim.ports import free_port

QEMU = {"x86_64": "qemu-system-x86_64", "aarch64": "qemu-system-aarch64"}
CONSOLE = {"x86_64": "ttyS0", "aarch64": "ttyAMA0"}
CPUS_PER_NODE = 1
DEFAULT_MEMORY_MB = 4096  # per node: a TF-Serving stand-in (TensorFlow), a perf_analyzer, the training
MIN_NODE_MEMORY_MB = 256
LAN_PREFIX = "10.89.0"  # each fleet's bridge is its own segment: every fleet may use the same addresses
LAN_FIRST_HOST = 10  # host 1 is .11
KVM_PROBE_SECONDS = 10.0
STOP_SECONDS = 20.0


class VmError(RuntimeError):
    """A virtual machine could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class VmShape:
    numa: int = 2
    memory_mb: int = DEFAULT_MEMORY_MB

    def check(self) -> None:
        if not 1 <= self.numa <= 8:
            raise VmError(f"--numa must be 1 to 8 nodes, not {self.numa}")
        if self.memory_mb < self.numa * MIN_NODE_MEMORY_MB:
            raise VmError(f"--vm-memory must give each of the {self.numa} nodes {MIN_NODE_MEMORY_MB} MiB at least")

    @property
    def cpus(self) -> int:
        return self.numa * CPUS_PER_NODE

    def node_memory_mb(self) -> list[int]:
        share = self.memory_mb // self.numa
        return [share] * (self.numa - 1) + [self.memory_mb - share * (self.numa - 1)]


def numa_args(shape: VmShape) -> list[str]:
    """One socket and one memory backend per NUMA node, as a multi-socket server has."""
    args = ["-smp", f"{shape.cpus},sockets={shape.numa},cores={CPUS_PER_NODE},threads=1", "-m", f"{shape.memory_mb}M"]
    for node, size in enumerate(shape.node_memory_mb()):
        first = node * CPUS_PER_NODE
        cpus = f"{first}-{first + CPUS_PER_NODE - 1}" if CPUS_PER_NODE > 1 else str(first)
        args += ["-object", f"memory-backend-ram,id=mem{node},size={size}M"]
        args += ["-numa", f"node,nodeid={node},cpus={cpus},memdev=mem{node}"]
    return args


def lan_mac(index: int) -> str:
    return f"52:54:00:89:00:{index:02x}"


def lan_address(index: int) -> str:
    return f"{LAN_PREFIX}.{LAN_FIRST_HOST + index}"


def lan_network_file(index: int) -> str:
    """networkd's config of the VM's LAN NIC, which the seed installs."""
    return f"[Match]\nMACAddress={lan_mac(index)}\n\n[Network]\nAddress={lan_address(index)}/24\n"


def bridge_name(fleet: str) -> str:
    return f"rbf-{hashlib.sha256(fleet.encode()).hexdigest()[:8]}"  # IFNAMSIZ: 15 characters


def tap_name(fleet: str, index: int) -> str:
    return f"rbt-{hashlib.sha256(fleet.encode()).hexdigest()[:6]}-{index:02d}"


# --- accelerator ---------------------------------------------------------------------------------
def accelerator(arch: str, image: VmImage, log: Callable[[str], None] = print) -> str:
    """'kvm' when a guest really boots under KVM here, 'tcg' otherwise. /dev/kvm opening is not enough
    (nested virtualization may be unusable: the guest stops after the BIOS), so a kernel is booted for
    KVM_PROBE_SECONDS and must print its banner. The verdict is kept until this machine reboots."""
    if arch != os.uname().machine or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    verdict = VM_CACHE / f"kvm-{arch}-{boot_id}"
    if verdict.exists():
        return verdict.read_text().strip()
    console = VM_CACHE / f"kvm-probe-{os.getpid()}.log"
    cmd = [QEMU[arch], "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-display", "none"]
    cmd += ["-kernel", str(image.kernel), "-append", f"console={CONSOLE[arch]} panic=-1", "-no-reboot"]
    cmd += ["-serial", f"file:{console}"]
    with contextlib.suppress(subprocess.TimeoutExpired):  # a guest that hangs is a verdict too
        subprocess.run(cmd, capture_output=True, timeout=KVM_PROBE_SECONDS, check=False)
    booted = console.exists() and "Linux version" in console.read_text(errors="replace")
    console.unlink(missing_ok=True)
    result = "kvm" if booted else "tcg"
    verdict.write_text(result + "\n")
    log(f"KVM {'works' if booted else 'does not run a guest here'}: VMs use {result.upper()}")
    return result


# --- the fleet LAN -------------------------------------------------------------------------------
def _ip(*args: str, check: bool = True) -> bool:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise VmError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.returncode == 0


def ensure_tap(fleet: str, index: int) -> str | None:
    """The VM's tap on the fleet's bridge, or None where this machine cannot make them (not root,
    no /dev/net/tun): the VM then has its user-mode NIC only, and the status says so."""
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        return None
    bridge, tap = bridge_name(fleet), tap_name(fleet, index)
    if not _ip("link", "show", bridge, check=False):
        _ip("link", "add", "name", bridge, "type", "bridge")
    _ip("link", "set", bridge, "up")
    if not _ip("link", "show", tap, check=False):
        _ip("tuntap", "add", "dev", tap, "mode", "tap")
    _ip("link", "set", tap, "master", bridge, "up")
    return tap


def remove_lan(fleet: str, indexes: list[int]) -> None:
    for index in indexes:
        _ip("link", "delete", tap_name(fleet, index), check=False)
    _ip("link", "delete", bridge_name(fleet), check=False)


# --- the machine ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class VmPaths:
    """A VM's files in the fleet's state directory (hosts/<name>/)."""

    home: Path

    @property
    def disk(self) -> Path:
        return self.home / "disk.qcow2"

    @property
    def seed_disk(self) -> Path:
        return self.home / "seed.img"

    @property
    def pid_file(self) -> Path:
        return self.home / "qemu.pid"

    @property
    def console(self) -> Path:
        return self.home / "console.log"


def make_disks(paths: VmPaths, image: VmImage, seed: Path) -> None:
    """A fresh overlay of the image's root disk, and the seed disk made from SEED (no mount needed)."""
    paths.disk.unlink(missing_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.root), "-F", "raw", str(paths.disk)],
        check=True,
        capture_output=True,
    )
    paths.seed_disk.unlink(missing_ok=True)
    seed_disk = ["mkfs.ext4", "-q", "-L", SEED_LABEL, "-d", str(seed), str(paths.seed_disk), "4M"]
    subprocess.run(seed_disk, check=True, capture_output=True)


def image_of(paths: VmPaths) -> VmImage:
    """The image a VM's overlay disk was made from (its backing file), to boot it again with the
    kernel that disk was made for; refused in one line if the image is gone from the cache."""
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", str(paths.disk)], capture_output=True, text=True, check=False
    )
    try:
        root = Path(json.loads(info.stdout)["backing-filename"])
    except (ValueError, KeyError):
        detail = info.stderr.strip() or "no backing file"
        raise VmError(f"{paths.disk}: not an overlay of a VM image ({detail})") from None
    image = image_from_dir(root.parent)
    missing = image.missing()
    if missing:
        gone = ", ".join(missing)
        raise VmError(f"the image its disk was made from is gone ({root.parent}: no {gone}): down, then up")
    return image


@dataclass(frozen=True)
class VmSpec:
    """What a VM is: its architecture, name, shape, accelerator and place on the fleet LAN."""

    arch: str
    name: str
    shape: VmShape
    accel: str
    tap: str | None
    lan_index: int


def qemu_command(spec: VmSpec, image: VmImage, paths: VmPaths, port: int) -> list[str]:
    arch, tap, index = spec.arch, spec.tap, spec.lan_index
    # -cpu max under TCG: every feature QEMU emulates (AVX2 and FMA since 7.2, which TensorFlow's wheels need)
    cpu = "host" if spec.accel == "kvm" else "max"
    machine = "q35" if arch == "x86_64" else "virt"
    cmd = [QEMU[arch], "-name", spec.name, "-machine", machine, "-cpu", cpu, "-nodefaults", "-display", "none"]
    cmd += ["-accel", "kvm" if spec.accel == "kvm" else "tcg,thread=multi"]
    cmd += numa_args(spec.shape)
    append = f"root=/dev/vda rw console={CONSOLE[arch]} net.ifnames=0 systemd.hostname={spec.name} quiet"
    cmd += ["-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append]
    cmd += ["-drive", f"file={paths.disk},if=virtio,format=qcow2"]
    cmd += ["-drive", f"file={paths.seed_disk},if=virtio,format=raw,readonly=on"]
    cmd += ["-netdev", f"user,id=wan,hostfwd=tcp:127.0.0.1:{port}-:22", "-device", "virtio-net-pci,netdev=wan"]
    if tap:
        cmd += ["-netdev", f"tap,id=lan,ifname={tap},script=no,downscript=no"]
        cmd += ["-device", f"virtio-net-pci,netdev=lan,mac={lan_mac(index)}"]
    cmd += ["-device", "virtio-rng-pci", "-serial", f"file:{paths.console}", "-monitor", "none"]
    cmd += ["-pidfile", str(paths.pid_file), "-daemonize"]
    return cmd


def start(cmd_for_port: Callable[[int], list[str]], paths: VmPaths, tries: int = 3) -> int:
    """Start QEMU with a free loopback port for sshd (another process may take the port between the
    probe and QEMU's bind: then another port); return the port."""
    last = ""
    for _ in range(tries):
        port = free_port()
        paths.pid_file.unlink(missing_ok=True)
        proc = subprocess.run(cmd_for_port(port), capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return port
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        if "hostfwd" not in last and "forward" not in last:
            break
    raise VmError(f"QEMU did not start: {last}")


def pid_of(paths: VmPaths) -> int | None:
    """QEMU's pid while it runs, else None (a stale pid file, or a pid reused by another program)."""
    try:
        pid = int(paths.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(paths.pid_file).encode() in cmdline else None


def running(paths: VmPaths) -> bool:
    return pid_of(paths) is not None


def stop(paths: VmPaths) -> None:
    """Power the VM off: SIGTERM (QEMU stops the guest at once: the fleet's disks are throwaway
    overlays), SIGKILL if it has not gone within STOP_SECONDS."""
    pid = pid_of(paths)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline:
        if not running(paths):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def console_tail(paths: VmPaths, lines: int = 3) -> str:
    if not paths.console.exists():
        return "no console output"
    text = [line.strip() for line in paths.console.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(text[-lines:]) or "no console output"
