"""Lets this x86_64 machine run aarch64 binaries through qemu-user-static and binfmt_misc.

Debian registers qemu-aarch64 without the 'C' (credentials) flag, so setuid binaries such as
sudo lose their privileges under emulation ("effective uid is not 0"). Ansible needs sudo on
the hosts, so the handler is re-registered with 'OC' added. This is machine-wide and lasts
until reboot or until binfmt-support registers the handler again.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
HANDLER = "qemu-aarch64"
QEMU_ENTRY = BINFMT_DIR / HANDLER
DEBIAN_FORMAT = Path("/usr/share/binfmts/qemu-aarch64")


class EmulationUnavailable(RuntimeError):
    """aarch64 emulation could not be switched on; the message says what is missing."""


def _entry() -> dict[str, str]:
    if not QEMU_ENTRY.exists():
        return {}
    lines = QEMU_ENTRY.read_text().splitlines()
    fields = {"state": lines[0].strip()}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    return fields


def aarch64_emulation_enabled() -> bool:
    entry = _entry()
    return entry.get("state") == "enabled" and "C" in entry.get("flags", "")


def _debian_format() -> dict[str, str]:
    fields = {}
    for line in DEBIAN_FORMAT.read_text().splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    return fields


def _register_with_credentials() -> None:
    fmt = _debian_format()
    if QEMU_ENTRY.exists():
        QEMU_ENTRY.write_text("-1")  # unregister Debian's entry, which lacks the C flag
    rule = f":{HANDLER}:M:{fmt.get('offset', '0')}:{fmt['magic']}:{fmt['mask']}:{fmt['interpreter']}:POCF"
    (BINFMT_DIR / "register").write_text(rule)


def enable_aarch64_emulation() -> None:
    """Make sure aarch64 binaries run here, setuid ones included."""
    if aarch64_emulation_enabled():
        return
    if not DEBIAN_FORMAT.exists():
        raise EmulationUnavailable("qemu-user-static is not installed (run scripts/bootstrap.sh)")
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=False)
    if not (BINFMT_DIR / "register").exists():
        raise EmulationUnavailable(f"binfmt_misc is not mounted at {BINFMT_DIR} and could not be")
    try:
        _register_with_credentials()
    except OSError as err:
        raise EmulationUnavailable(f"could not register {HANDLER} with binfmt_misc: {err}") from err
    if not aarch64_emulation_enabled():
        raise EmulationUnavailable(f"binfmt handler {QEMU_ENTRY} is not enabled with credentials")
