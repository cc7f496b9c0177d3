"""Run every Molecule scenario, a few at a time, each into its own log.

Each scenario's hosts are simulated fleet hosts on this machine (sim/fleet/molecule.py), reached over
SSH; two lanes keep both cores busy. The longest scenarios start first so that the lanes end together.
A failed scenario prints the end of its log; the exit status is non-zero if any failed.

    python -m sim.fleet.molecule_all [--lanes 2] [--logs logs/molecule] [SCENARIO ...]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from sim.fleet.fleet import REPO_ROOT

MOLECULE_DIR = REPO_ROOT / "molecule"
# Minutes each scenario took alone on a 2-core machine (hosts over SSH), for ordering only (unknown ones
# count as 5); the two with an emulated aarch64 host are the longest.
EXPECTED_MINUTES = {
    "tensorflow": 7,
    "pipeline": 4.5,
    "perf_analyzer": 4.4,
    "tfserving": 2,
    "tfserving_build": 1.8,
    "perf_analyzer_registry": 1.1,
    "perf_analyzer_image": 1.1,
    "artifact_store": 1,
    "host_prep": 0.8,
    "nightly": 0.5,
    "artifact": 0.4,
}
# Scenarios that converge on this machine itself and share its state (the perf_analyzer role's local
# fact in Ansible's facts.d, the podman images): never two of one group at the same time.
EXCLUSIVE_GROUPS = [{"perf_analyzer_image", "perf_analyzer_registry"}]
TAIL_LINES = 120


@dataclass(frozen=True)
class Outcome:
    scenario: str
    returncode: int
    seconds: float
    log: Path


def all_scenarios() -> list[str]:
    return sorted(path.parent.name for path in MOLECULE_DIR.glob("*/molecule.yml"))


def longest_first(scenarios: list[str]) -> list[str]:
    return sorted(scenarios, key=lambda name: -EXPECTED_MINUTES.get(name, 5))


GROUP_LOCKS = [(group, threading.Lock()) for group in EXCLUSIVE_GROUPS]


def run_scenario(scenario: str, logs: Path) -> Outcome:
    log = logs / f"{scenario}.log"
    with contextlib.ExitStack() as held:
        for group, lock in GROUP_LOCKS:
            if scenario in group:
                held.enter_context(lock)
        started = time.monotonic()
        with log.open("w") as out:
            returncode = subprocess.run(
                ["molecule", "test", "-s", scenario], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            ).returncode
    return Outcome(scenario, returncode, time.monotonic() - started, log)


def tail(path: Path, lines: int) -> str:
    return "\n".join(deque(path.read_text(errors="replace").splitlines(), maxlen=lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="scenarios to run (default: all under molecule/)")
    parser.add_argument("--lanes", type=int, default=2, help="scenarios run at the same time (default 2)")
    parser.add_argument("--logs", type=Path, default=Path("logs/molecule"), help="one log per scenario here")
    args = parser.parse_args(argv)
    known = all_scenarios()
    unknown = sorted(set(args.scenarios) - set(known))
    if unknown or args.lanes < 1:
        problem = f"no such scenario: {', '.join(unknown)}" if unknown else "--lanes must be at least 1"
        print(f"molecule_all: {problem}", file=sys.stderr)
        return 2
    args.logs.mkdir(parents=True, exist_ok=True)
    queue = longest_first(args.scenarios or known)
    print(f"{len(queue)} scenarios in {args.lanes} lanes, logs in {args.logs}/", flush=True)
    failed: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=args.lanes) as pool:
        futures = [pool.submit(run_scenario, name, args.logs) for name in queue]
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            verdict = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
            print(f"[{done}/{len(queue)}] {outcome.scenario}: {verdict} in {outcome.seconds:.0f} s", flush=True)
            if outcome.returncode != 0:
                failed.append(outcome)
    for outcome in failed:
        print(f"\n--- end of {outcome.log} ---\n{tail(outcome.log, TAIL_LINES)}", flush=True)
    if failed:
        print(f"molecule: {len(failed)} failed: {', '.join(o.scenario for o in failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
