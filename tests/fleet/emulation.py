"""Lets this x86_64 machine run aarch64 binaries through qemu-user-static and binfmt_misc."""

from __future__ import annotations

import subprocess
from pathlib import Path

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_ENTRY = BINFMT_DIR / "qemu-aarch64"


class EmulationUnavailable(RuntimeError):
    """aarch64 emulation could not be switched on; the message says what is missing."""


def aarch64_emulation_enabled() -> bool:
    return QEMU_ENTRY.exists() and QEMU_ENTRY.read_text().splitlines()[0].strip() == "enabled"


def enable_aarch64_emulation() -> None:
    """Mount binfmt_misc if needed and enable the qemu-aarch64 handler (Debian's qemu-user-static)."""
    if aarch64_emulation_enabled():
        return
    if not Path("/usr/bin/qemu-aarch64-static").exists():
        raise EmulationUnavailable("qemu-user-static is not installed (run scripts/bootstrap.sh)")
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=False)
    subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, check=False)
    if not aarch64_emulation_enabled():
        raise EmulationUnavailable(f"binfmt handler {QEMU_ENTRY} could not be enabled")
