"""Builds the disk image of a fleet host that is a virtual machine, once per architecture and recipe.

The same debootstrap Debian as the container image (sim/fleet/image.py: login account, sudo, seed
unit, no host keys), plus what a machine needs to boot itself: Debian's kernel and an initramfs with
the virtio drivers, udev, networkd on the user-mode NIC (DHCP) and on the fleet LAN (an address the
seed gives), an fstab that mounts the seed disk before the seed unit runs. host_prep's packages and
nftables are installed too: under TCG every dpkg step costs minutes, and the install is the same
code the container hosts test.

The image is three files in a cache directory outside the clone, like the artifact store, so fresh
clones reuse it: root.img (ext4, made by `mkfs.ext4 -d` without mounting anything), vmlinuz and
initrd.img (QEMU boots them directly: no boot loader). Each VM writes to its own qcow2 overlay.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.fleet.emulation import enable_aarch64_emulation
from sim.fleet.image import (
    DEBIAN_ARCH,
    DEBIAN_MIRROR,
    DEBIAN_SUITE,
    PACKAGES,
    SEED_DIR,
    SEED_SCRIPT,
    SEED_UNIT,
    SSHD_CONFIG,
    customise,
    debootstrap,
    with_host_prep_packages,
    write_file,
)

VM_CACHE = Path(os.environ.get("RECBENCH_VM_IMAGES", "/var/tmp/recbench-vm-images"))
KERNEL_PACKAGE = {"x86_64": "linux-image-amd64", "aarch64": "linux-image-arm64"}
# The machine's own pieces: kernel, initramfs, device manager, networkd's address tools, the firewall.
VM_PACKAGES = ["initramfs-tools", "udev", "kmod", "iproute2", "nftables"]
ROOT_SIZE = "8G"  # sparse: a TensorFlow virtualenv and a few models fit, unused blocks cost nothing
SEED_LABEL = "fleet-seed"
# Drivers the initramfs must carry to find the root disk: Debian builds them as modules.
INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "ext4"]

FSTAB = f"""# Fleet VM: the root disk and the seed disk (this host's keys and address, sim.fleet).
/dev/vda / ext4 rw,errors=remount-ro 0 1
LABEL={SEED_LABEL} {SEED_DIR} ext4 ro 0 0
"""
# The user-mode NIC (QEMU's slirp: sshd's port forward and the way out) takes DHCP; the fleet LAN's
# address comes from the seed (10-lan.network, matched by its MAC), which sorts first.
DHCP_NETWORK = """[Match]
Name=eth*

[Network]
DHCP=ipv4
"""
SEED_DROP_IN = f"""[Unit]
RequiresMountsFor={SEED_DIR}
"""
RESOLV_CONF = "nameserver 10.0.2.3\n"  # slirp's DNS forwarder
# debootstrap writes no /etc/hosts (podman gives a container one): without it nothing resolves
# localhost (gRPC's resolver, so perf_analyzer's -u localhost:<port>); the seed adds the host's name.
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"


@dataclass(frozen=True)
class VmImage:
    root: Path
    kernel: Path
    initrd: Path

    def missing(self) -> list[str]:
        """The names of its files that are not there: none for a whole image."""
        return [p.name for p in (self.root, self.kernel, self.initrd) if not p.exists()]


def vm_packages(arch: str) -> list[str]:
    return with_host_prep_packages([*PACKAGES, KERNEL_PACKAGE[arch], *VM_PACKAGES])


def vm_recipe_hash(arch: str) -> str:
    """Changes whenever what goes into the image changes, so a stale cached image is not used."""
    parts = [DEBIAN_SUITE, DEBIAN_MIRROR, ROOT_SIZE, *vm_packages(arch), *INITRAMFS_MODULES]
    parts += [SEED_SCRIPT, SEED_UNIT, SSHD_CONFIG, FSTAB, DHCP_NETWORK, SEED_DROP_IN, RESOLV_CONF, HOSTS]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def image_dir(arch: str) -> Path:
    return VM_CACHE / f"{DEBIAN_SUITE}-{DEBIAN_ARCH[arch]}-{vm_recipe_hash(arch)}"


def image_from_dir(where: Path) -> VmImage:
    return VmImage(where / "root.img", where / "vmlinuz", where / "initrd.img")


def vm_image(arch: str) -> VmImage:
    return image_from_dir(image_dir(arch))


def _trusted_cache() -> None:
    """The cache holds what every VM boots: it must be this user's and nobody else's to write."""
    VM_CACHE.mkdir(parents=True, exist_ok=True, mode=0o755)
    info = VM_CACHE.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{VM_CACHE}: VM image cache must be yours and writable by you alone (chmod go-w)")


def ensure_vm_image(arch: str, log: Callable[[str], None] = print) -> VmImage:
    """Return ARCH's VM image, building it first if it is missing or its recipe changed."""
    _trusted_cache()
    image = vm_image(arch)
    if not image.missing():
        return image
    if arch != os.uname().machine:
        enable_aarch64_emulation()  # debootstrap's second stage and update-initramfs run arm64 code
    log(f"building VM image {image.root.parent.name} with debootstrap (two to five minutes)")
    with tempfile.TemporaryDirectory(prefix="build-", dir=VM_CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        debootstrap(rootfs, DEBIAN_ARCH[arch], vm_packages(arch))
        customise(rootfs)
        _customise_vm(rootfs)
        built = Path(tmp) / "image"
        built.mkdir()
        shutil.copyfile(_only(rootfs / "boot", "vmlinuz-*"), built / "vmlinuz")
        shutil.copyfile(_only(rootfs / "boot", "initrd.img-*"), built / "initrd.img")
        _run(["mkfs.ext4", "-q", "-L", "fleet-root", "-d", str(rootfs), str(built / "root.img"), ROOT_SIZE])
        built.chmod(0o755)
        try:
            built.rename(image.root.parent)  # whole or not at all: a half-built image is never found
        except OSError:
            # Another build of the same recipe finished first: its image is the same one.
            if image.missing():
                raise
            log(f"VM image {image.root.parent.name}: another build finished first; using it")
            return image
    log(f"built VM image {image.root.parent}")
    for stale in stale_images(arch):
        shutil.rmtree(stale)
        log(f"removed VM image {stale.name}: its recipe is an older one (a stopped VM made from it cannot resume)")
    return image


def stale_images(arch: str) -> list[Path]:
    """ARCH's cached images of other recipes than today's (each is a root disk of a few GiB)."""
    current = image_dir(arch)
    return sorted(p for p in VM_CACHE.glob(f"{DEBIAN_SUITE}-{DEBIAN_ARCH[arch]}-*") if p.is_dir() and p != current)


def _customise_vm(rootfs: Path) -> None:
    write_file(rootfs / "etc/fstab", FSTAB, 0o644)
    write_file(rootfs / "etc/hosts", HOSTS, 0o644)
    write_file(rootfs / "etc/systemd/network/90-dhcp.network", DHCP_NETWORK, 0o644)
    write_file(rootfs / "etc/systemd/system/fleet-seed.service.d/vm.conf", SEED_DROP_IN, 0o644)
    resolv = rootfs / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    write_file(resolv, RESOLV_CONF, 0o644)
    for unit, target in [
        ("systemd-networkd.service", "multi-user.target.wants"),
        ("systemd-networkd.socket", "sockets.target.wants"),
    ]:
        wants = rootfs / "etc/systemd/system" / target
        wants.mkdir(parents=True, exist_ok=True)
        (wants / unit).symlink_to(f"/lib/systemd/system/{unit}")
    modules = rootfs / "etc/initramfs-tools/modules"
    modules.write_text(modules.read_text() + "\n".join(INITRAMFS_MODULES) + "\n")
    _run(["chroot", str(rootfs), "update-initramfs", "-u", "-k", "all"])


def _only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"{directory}: expected one {pattern}, found {len(found)}")
    return found[0]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(f"{cmd[0]} failed: {detail[-1] if detail else 'exit ' + str(proc.returncode)}")
