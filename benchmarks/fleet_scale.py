"""Benchmark: hosts that never wait for each other. Prints figures; asserts nothing about speed.

For each fleet size N (default 1, 4 and 12 simulated hosts, a quarter of them - at least one when N > 1 -
made about 3x slower by a CPU quota), after site.yml and the training of one model:
- the sweep stage's wall time with today's free strategy and with the lock-step (linear) one it
  replaced, in the same run, against the slowest host's own work in the free run, read two ways: its
  tasks (from its first task's start to its last task's end, as recbench_hosts prints it) and its
  points (from its first point's start to its last point's end); the aim is a fleet time within 1.2x
  of its slowest host's own work;
- the controller's own CPU seconds per host for a no-change host_prep (site.yml --tags host_prep): the
  simulated hosts share this machine's cores, so wall time counts their work too; the CPU time of
  ansible-playbook and its children (forks, ssh) is what a real fleet's controller pays.

The simulated hosts share this machine: 12 of them on 2 cores take long (site.yml installs TensorFlow
on each). Run from the repository root inside .venv:
    python benchmarks/fleet_scale.py [--hosts 1 4 12] [--model dlrm]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import facts
from sim.fleet.fleet import REPO_ROOT, Fleet

STORE = Path(os.environ.get("RECBENCH_ARTIFACTS", "/var/tmp/recbench-artifacts"))


def playbook(fleet: Fleet, name: str, results: Path, run_id: str, *args: str) -> tuple[float, float, str]:
    """Run a stage; return (wall seconds, CPU seconds of ansible-playbook and its children, its output)."""
    cmd = [
        "ansible-playbook", "-i", str(fleet.inventory), f"playbooks/{name}.yml", "-e", "@scripts/simulated-fleet.yml",
        "-e", f"recbench_artifact_dir={STORE}", "-e", f"recbench_results_dir={results}",
        "-e", f"recbench_run_id={run_id}", "-e", "forks=50", *args,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stdout[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def busiest_host(output: str) -> tuple[str, float]:
    """The host busy longest in a run and its seconds, from the recbench_hosts line."""
    found = re.search(r"recbench: busiest hosts \(first task to last\): (\S+) (\d+) s", output)
    if not found:
        sys.exit("no 'recbench: busiest hosts' line in the run's output")
    return found.group(1), float(found.group(2))


def slowest_span(fleet: Fleet, run_id: str) -> tuple[str, float]:
    """The host whose points span the longest time in the run (its own work), read on the hosts."""
    spans = {}
    for host in fleet.hosts():
        listing = subprocess.run(
            ["podman", "exec", host.container, "sh", "-c",
             f"cat {facts.RESULTS_ROOT}/{run_id}/{host.name}/*/*/*/metadata.json"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        decoder, position, starts, ends = json.JSONDecoder(), 0, [], []
        while position < len(listing):
            while position < len(listing) and listing[position].isspace():
                position += 1
            if position >= len(listing):
                break
            meta, position = decoder.raw_decode(listing, position)
            if meta.get("started_at"):
                starts.append(datetime.fromisoformat(meta["started_at"]))
            ends.append(datetime.fromisoformat(meta["finished_at"]))
        if starts:
            spans[host.name] = (max(ends) - min(starts)).total_seconds()
    host = max(spans, key=spans.get)
    return host, spans[host]


def measure(count: int, model: str, work: Path) -> dict:
    slow = 0 if count == 1 else max(1, math.ceil(count / 4))
    fleet = Fleet(work / f"fleet-{count}", name=f"scale{count}")
    fleet.down(log=lambda _: None)
    fleet.up(count, slow=slow, log=lambda _: None)
    try:
        results = work / f"results-{count}"
        models = json.dumps({"recbench_models": [model]})
        site_wall, _, _ = playbook(fleet, "site", results, "site")
        playbook(fleet, "train", results, "trained", "-e", models)
        linear, _, _ = playbook(fleet, "sweep", results, "lockstep", "-e", models, "-e", "recbench_strategy=linear")
        free, _, output = playbook(fleet, "sweep", results, "free", "-e", models)
        busy_host, busy = busiest_host(output)
        host, span = slowest_span(fleet, "free")
        prep_wall, prep_cpu, _ = playbook(fleet, "site", results, "prep", "--tags", "host_prep")
        return {
            "hosts": count,
            "slow": slow,
            "site": site_wall,
            "linear": linear,
            "free": free,
            "busiest": busy_host,
            "busy": busy,
            "slowest": host,
            "span": span,
            "prep_wall": prep_wall,
            "prep_cpu_per_host": prep_cpu / count,
        }
    finally:
        fleet.down(log=lambda _: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 4, 12])
    parser.add_argument("--model", default="dlrm", help="the one model trained and swept (default: %(default)s)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.hosts:
            row = measure(count, args.model, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nsweep stage of {args.model} with the ci profile; slow hosts have a 0.33-core quota")
    print(f"{'hosts':>5} {'slow':>4} {'lock-step s':>11} {'free s':>7} {'free/lock':>9} {'slowest tasks s':>15} "
          f"{'free/tasks':>10} {'slowest points s':>16} {'free/points':>11} {'host_prep CPU s/host':>20}")  # fmt: skip
    for r in rows:
        print(
            f"{r['hosts']:>5} {r['slow']:>4} {r['linear']:>11.0f} {r['free']:>7.0f} {r['free'] / r['linear']:>9.2f} "
            f"{r['busy']:>15.0f} {r['free'] / r['busy']:>10.2f} {r['span']:>16.0f} {r['free'] / r['span']:>11.2f} "
            f"{r['prep_cpu_per_host']:>20.1f}"
        )


if __name__ == "__main__":
    main()
