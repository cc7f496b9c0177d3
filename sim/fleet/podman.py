"""Runs podman with the repository's containers.conf, so the machine's /etc stays untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")


class PodmanError(RuntimeError):
    """A podman command failed; the message carries podman's own words."""


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def podman(*args: str, check: bool = True, input_bytes: bytes | None = None) -> str:
    """Run `podman ARGS` and return its stdout; raise PodmanError with its stderr on failure."""
    proc = subprocess.run(["podman", *args], input=input_bytes, capture_output=True, env=podman_env(), check=False)
    if check and proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PodmanError(f"podman {args[0]} failed: {detail[-1] if detail else 'exit ' + str(proc.returncode)}")
    return proc.stdout.decode(errors="replace")


def podman_succeeds(*args: str) -> bool:
    """True when `podman ARGS` exits 0 (for yes/no questions such as `image exists`)."""
    return subprocess.run(["podman", *args], capture_output=True, env=podman_env(), check=False).returncode == 0
