"""Benchmark: bring up 3 simulated hosts from the cached image, and a no-change host_prep run on them.

Prints figures; asserts nothing about speed (the machines are shared and noisy).
Run from the repository root inside .venv: python benchmarks/fleet_bringup.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.fleet.fleet import REPO_ROOT, Fleet
from sim.fleet.image import ensure_image

HOSTS = 3


def timed(label: str, func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"{label:<46} {seconds:7.2f} s", flush=True)
    return seconds


def playbook(inventory: Path) -> None:
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "playbooks/site.yml", "--tags", "host_prep"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(proc.stdout[-2000:])
    recap = [line for line in proc.stdout.splitlines() if "changed=" in line and "ok=" in line]
    print("   " + "\n   ".join(recap))


def main() -> None:
    import platform

    ensure_image(platform.machine())
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp), name="bench")
        fleet.down(log=lambda _: None)
        try:
            timed(f"up {HOSTS} hosts from the cached image", lambda: fleet.up(HOSTS, log=lambda _: None))
            timed(f"host_prep, first run on {HOSTS} hosts", lambda: playbook(fleet.inventory))
            timed(f"host_prep, second (no-change) run on {HOSTS} hosts", lambda: playbook(fleet.inventory))
        finally:
            fleet.down(log=lambda _: None)


if __name__ == "__main__":
    main()
