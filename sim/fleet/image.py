"""Builds the fleet host image (Debian 12, systemd, sshd, python3, sudo) once per architecture.

The image carries no SSH host keys and no login keys: each container gets its own from a seed
directory at first boot (see SEED_SCRIPT), so pinning keys in known_hosts means something.

The emulated (aarch64) image also carries host_prep's base packages: under qemu every dpkg step
costs minutes, and that install is the same code on every architecture, tested on the native hosts,
whose image leaves the packages to host_prep. On the emulated host host_prep finds them present.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from sim.fleet.emulation import enable_aarch64_emulation
from sim.fleet.podman import podman, podman_succeeds

IMAGE_REPO = "localhost/recbench-host"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ["systemd", "systemd-sysv", "openssh-server", "python3", "sudo", "ca-certificates"]
HOST_PREP_PACKAGES = Path(__file__).resolve().parents[2] / "roles" / "host_prep" / "vars" / "Debian.yml"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SEED_DIR = "/var/lib/fleet-seed"
LOGIN_USER = "ansible"

# Debian names for `uname -m` values.
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

SEED_SCRIPT = f"""#!/bin/sh
# Installs this host's own SSH host keys and the controller's login key from the seed directory, and
# on a virtual machine its fleet network address (podman gives a container its /etc/hosts and address).
set -eu
seed={SEED_DIR}
for key in "$seed"/ssh_host_*_key; do
  install -m 0600 -o root -g root "$key" /etc/ssh/
  install -m 0644 -o root -g root "$key.pub" /etc/ssh/
done
install -d -m 0700 -o {LOGIN_USER} -g {LOGIN_USER} /home/{LOGIN_USER}/.ssh
install -m 0600 -o {LOGIN_USER} -g {LOGIN_USER} "$seed/authorized_keys" /home/{LOGIN_USER}/.ssh/authorized_keys
if [ -d "$seed/network" ]; then
  install -m 0644 -o root -g root "$seed"/network/*.network /etc/systemd/network/
fi
grep -qw "$(hostname)" /etc/hosts || echo "127.0.1.1 $(hostname)" >> /etc/hosts
"""

SEED_UNIT = f"""[Unit]
Description=Install this fleet host's own SSH keys
Before=ssh.service systemd-networkd.service
ConditionPathExists={SEED_DIR}/authorized_keys

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleet-seed
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""

SSHD_CONFIG = """# Simulated fleet host: key login only.
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""


def image_name(arch: str) -> str:
    return f"{IMAGE_REPO}:{DEBIAN_SUITE}-{DEBIAN_ARCH[arch]}"


def packages(arch: str) -> list[str]:
    """What debootstrap installs: the base, plus host_prep's packages on an emulated image."""
    if arch == _machine_arch():
        return PACKAGES
    return with_host_prep_packages(PACKAGES)


def with_host_prep_packages(base: list[str]) -> list[str]:
    """BASE, then host_prep's Debian packages that are not in it (the role finds them installed)."""
    listed = yaml.safe_load(HOST_PREP_PACKAGES.read_text())["__host_prep_packages"]
    return base + [p for p in listed if p not in base]


def recipe_hash(arch: str) -> str:
    """Changes whenever what goes into the image changes, so a stale cached image is rebuilt."""
    recipe = "\n".join([DEBIAN_SUITE, DEBIAN_MIRROR, *packages(arch), SEED_SCRIPT, SEED_UNIT, SSHD_CONFIG])
    ca = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b""
    return hashlib.sha256(recipe.encode() + ca).hexdigest()[:16]


def cached(arch: str) -> bool:
    """True when the image exists and was built from the current recipe."""
    name = image_name(arch)
    if not podman_succeeds("image", "exists", name):
        return False
    label = podman("image", "inspect", "--format", '{{ index .Labels "recbench.recipe" }}', name).strip()
    return label == recipe_hash(arch)


def ensure_image(arch: str, log: Callable[[str], None] = print) -> str:
    """Return the image for ARCH, building it first if it is missing or stale."""
    name = image_name(arch)
    if arch != _machine_arch():
        enable_aarch64_emulation()  # the build runs aarch64 code, and so do containers of the image
    if cached(arch):
        return name
    log(f"building host image {name} with debootstrap (one to three minutes)")
    with tempfile.TemporaryDirectory(prefix="recbench-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        debootstrap(rootfs, DEBIAN_ARCH[arch], packages(arch))
        customise(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        podman(
            "import",
            "--change",
            'CMD ["/sbin/init"]',
            "--change",
            f"LABEL recbench.recipe={recipe_hash(arch)}",
            "--arch",
            DEBIAN_ARCH[arch],
            "-",
            name,
            input_bytes=tar.stdout.read(),
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the host root filesystem failed")
    log(f"built {name}")
    return name


def _machine_arch() -> str:
    return platform.machine()


def debootstrap(rootfs: Path, debian_arch: str, included: list[str]) -> None:
    """A minimal Debian of DEBIAN_ARCH in ROOTFS with INCLUDED packages; one line of error on failure."""
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={debian_arch}",
        f"--include={','.join(included)}",
        DEBIAN_SUITE,
        str(rootfs),
        DEBIAN_MIRROR,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        sys.stderr.write(tail + "\n")
        raise RuntimeError(f"debootstrap for {debian_arch} failed (exit {proc.returncode})")


def customise(rootfs: Path) -> None:
    """What every fleet host image has: the login account, sudo, the seed unit, key-only sshd, no host keys."""
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    if HOST_CA_BUNDLE.exists():
        target = rootfs / HOST_CA_BUNDLE.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOST_CA_BUNDLE, target)
    subprocess.run(
        ["chroot", str(rootfs), "useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", LOGIN_USER],
        check=True,
    )
    write_file(rootfs / f"etc/sudoers.d/{LOGIN_USER}", f"{LOGIN_USER} ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    write_file(rootfs / "usr/local/sbin/fleet-seed", SEED_SCRIPT, 0o755)
    write_file(rootfs / "etc/systemd/system/fleet-seed.service", SEED_UNIT, 0o644)
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "fleet-seed.service").symlink_to("/etc/systemd/system/fleet-seed.service")
    write_file(rootfs / "etc/ssh/sshd_config.d/fleet.conf", SSHD_CONFIG, 0o644)
    (rootfs / SEED_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    # apt caches from debootstrap only make the image bigger.
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)


def write_file(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
