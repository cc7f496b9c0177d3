"""Benchmark: the sweep stage of a fleet against its slowest host's own measurement time. Prints
figures; asserts nothing about speed.

For each fleet size N (default 1, 4 and 12 simulated hosts, a quarter of them - at least one when N > 1 -
made about 3x slower by a CPU quota), after site.yml and the training of one model, the sweep stage run
two ways in the same run, each with a run id of its own:
- `queue`: today's design, each host's whole queue launched once as a systemd unit on the host
  (bench/queue.py), the controller only looking at its progress;
- `per-config`: the design it replaced, every config driven from the controller (servers started,
  job written, clients launched and polled, servers stopped: Ansible tasks per config), run from a
  git worktree of BASELINE (default: the last commit with that design) against the same hosts.
Each is read against the slowest host's own measurement time: in the queue run, the seconds its
runner spent on configs (servers started and ready, the perf_analyzer runs, servers stopped;
progress.json's busy_s); the aim is a stage within 1.1x of it. Also printed: the controller's CPU
seconds per host for each sweep stage (ansible-playbook and its children: forks, ssh), what one
controller pays per host for the stage that runs all night.

The simulated hosts share this machine: 12 of them on 2 cores take long (site.yml installs TensorFlow
on each). Run from the repository root inside .venv:
    python benchmarks/fleet_scale.py [--hosts 1 4 12] [--model dlrm] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import facts
from sim.fleet.fleet import REPO_ROOT, Fleet

STORE = Path(os.environ.get("RECBENCH_ARTIFACTS", "/var/tmp/recbench-artifacts"))
# The last commit whose sweep role drove every config from the controller.
BASELINE = "7a17be0"


def playbook(
    fleet: Fleet, name: str, results: Path, run_id: str, *args: str, repo: Path = REPO_ROOT
) -> tuple[float, float, str]:
    """Run a stage of the checkout REPO; return (wall seconds, CPU seconds of ansible-playbook and its
    children, its output)."""
    cmd = [
        "ansible-playbook", "-i", str(fleet.inventory), f"playbooks/{name}.yml", "-e", "@scripts/simulated-fleet.yml",
        "-e", f"recbench_artifact_dir={STORE}", "-e", f"recbench_results_dir={results}",
        "-e", f"recbench_run_id={run_id}", "-e", "forks=50", *args,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stdout[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def busiest_runner(fleet: Fleet, run_id: str) -> tuple[str, float]:
    """The host whose queue runner spent the most seconds on its configs in RUN_ID, and those seconds."""
    busy = {}
    for host in fleet.hosts():
        text = subprocess.run(
            ["podman", "exec", host.container, "cat", f"{facts.SWEEP_STATE_DIR}/{run_id}/progress.json"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        progress = json.loads(text) if text.strip() else {}
        if progress.get("state") != "done":
            sys.exit(f"{host.name}: the queue of {run_id} did not end: {progress}")
        busy[host.name] = float(progress["busy_s"])
    host = max(busy, key=busy.get)
    return host, busy[host]


def baseline_checkout(rev: str, work: Path) -> Path:
    """A worktree of REV (the design being compared), made once per run."""
    tree = work / f"baseline-{rev}"
    if not tree.exists():
        done = subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), rev], cwd=REPO_ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"git worktree add {rev}: {done.stderr.strip()}")
    return tree


def measure(count: int, model: str, work: Path, baseline: Path) -> dict:
    slow = 0 if count == 1 else max(1, math.ceil(count / 4))
    fleet = Fleet(work / f"fleet-{count}", name=f"scale{count}")
    fleet.down(log=lambda _: None)
    fleet.up(count, slow=slow, log=lambda _: None)
    try:
        results = work / f"results-{count}"
        models = json.dumps({"recbench_models": [model]})
        site_wall, _, _ = playbook(fleet, "site", results, "site")
        playbook(fleet, "train", results, "trained", "-e", models)
        old_wall, old_cpu, _ = playbook(fleet, "sweep", results, "per-config", "-e", models, repo=baseline)
        # the baseline's modelzoo role is not run: the hosts keep this checkout's code, which reads the
        # baseline's job files as they were
        new_wall, new_cpu, _ = playbook(fleet, "sweep", results, "queue", "-e", models)
        host, busy = busiest_runner(fleet, "queue")
        return {
            "hosts": count,
            "slow": slow,
            "site": round(site_wall, 1),
            "per_config": round(old_wall, 1),
            "queue": round(new_wall, 1),
            "slowest": host,
            "slowest_busy": round(busy, 1),
            "per_config_cpu_per_host": round(old_cpu / count, 2),
            "queue_cpu_per_host": round(new_cpu / count, 2),
        }
    finally:
        fleet.down(log=lambda _: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 4, 12])
    parser.add_argument("--model", default="dlrm", help="the one model trained and swept (default: %(default)s)")
    parser.add_argument("--baseline", default=BASELINE, help="the per-config design's commit (default: %(default)s)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = baseline_checkout(args.baseline, Path(tmp))
        try:
            for count in args.hosts:
                row = measure(count, args.model, Path(tmp), baseline)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=REPO_ROOT, check=False)
    print(f"\nsweep stage of {args.model} with the ci profile; slow hosts have a 0.33-core quota")
    print(f"{'hosts':>5} {'slow':>4} {'per-config s':>12} {'queue s':>8} {'slowest host busy s':>19} "
          f"{'per-config/busy':>15} {'queue/busy':>10} {'CPU s/host: per-config':>22} {'queue':>6}")  # fmt: skip
    for r in rows:
        print(
            f"{r['hosts']:>5} {r['slow']:>4} {r['per_config']:>12.0f} {r['queue']:>8.0f} {r['slowest_busy']:>19.0f} "
            f"{r['per_config'] / r['slowest_busy']:>15.2f} {r['queue'] / r['slowest_busy']:>10.2f} "
            f"{r['per_config_cpu_per_host']:>22.1f} {r['queue_cpu_per_host']:>6.1f}"
        )


if __name__ == "__main__":
    main()
