"""Hosts of an Ansible inventory as SSH targets: address, port, user, key and known_hosts file,
read through `ansible-inventory`, so every inventory form and group_vars are honoured."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from collect.errors import InputError


class InventoryError(InputError):
    """The inventory cannot be read, or names no such host or group."""


@dataclass(frozen=True)
class SshTarget:
    name: str
    address: str
    port: int
    user: str | None
    key_file: Path | None
    known_hosts: Path


def _known_hosts_from(args: str) -> Path | None:
    words = shlex.split(args or "")
    for i, word in enumerate(words):
        option = word if word != "-o" else (words[i + 1] if i + 1 < len(words) else "")
        if option.startswith("UserKnownHostsFile="):
            return Path(option.split("=", 1)[1]).expanduser()
    return None


def targets(inventory: Path, limit: str = "all") -> list[SshTarget]:
    """The hosts of LIMIT (a group or host name) in INVENTORY."""
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise InventoryError(f"{inventory}: ansible-inventory failed: {proc.stderr.strip().splitlines()[-1:]}")
    data = json.loads(proc.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})

    def members(group: str) -> list[str]:
        entry = data.get(group, {})
        found = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            found += members(child)
        return found

    names = sorted(set(members(limit))) if limit in data else ([limit] if limit in hostvars else [])
    if not names:
        raise InventoryError(f"{inventory}: no host or group named {limit!r}")
    result = []
    for name in names:
        hv = hostvars.get(name, {})
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        known = _known_hosts_from(hv.get("ansible_ssh_common_args", "")) or Path("~/.ssh/known_hosts").expanduser()
        result.append(
            SshTarget(
                name,
                hv.get("ansible_host", name),
                int(hv.get("ansible_port", 22)),
                hv.get("ansible_user"),
                Path(key).expanduser() if key else None,
                known,
            )
        )
    return result
