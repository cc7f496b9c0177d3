"""Benchmark: wall time of the pipeline with the ci profile on 1 and on 2 simulated hosts, and the share
of it spent outside perf_analyzer (orchestration: Ansible, server start and readiness, stops, training).

One fleet of the largest host count is prepared by site.yml (timed, but an install is a one-off); then,
for each host count N, train + sweep + fetch of a new run on the first N hosts (timed, one after the
other). perf_analyzer's own time per host is the sum of the attempt times its points recorded; the
share outside it compares that with the sweep stage's and the whole run's wall time. Prints figures;
asserts nothing about speed (the machines are shared and noisy).
Run from the repository root inside .venv: python benchmarks/pipeline_wall.py [--hosts 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.fleet.fleet import REPO_ROOT, Fleet

STORE = Path(os.environ.get("RECBENCH_ARTIFACTS", "/var/tmp/recbench-artifacts"))


def playbook(fleet: Fleet, results: Path, run_id: str, *args: str) -> float:
    cmd = [
        "ansible-playbook", "-i", str(fleet.inventory), "playbooks/bench.yml", "-e", "@scripts/simulated-fleet.yml",
        "-e", f"recbench_artifact_dir={STORE}", "-e", f"recbench_results_dir={results}",
        "-e", f"recbench_run_id={run_id}", *args,
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(proc.stdout[-3000:])
    return seconds


def perf_analyzer_seconds(results: Path, run_id: str) -> dict[str, float]:
    """Per host, the seconds its perf_analyzer attempts took (instances of a point run concurrently:
    the slowest instance of each point counts)."""
    per_point: dict[tuple[str, str], float] = {}
    for meta_path in (results / run_id).glob("*/*/*/*/metadata.json"):
        meta = json.loads(meta_path.read_text())
        key = (meta["host"], meta["config_id"])
        per_point[key] = max(per_point.get(key, 0.0), sum(a["seconds"] for a in meta["attempts"]))
    hosts: dict[str, float] = {}
    for (host, _), seconds in per_point.items():
        hosts[host] = hosts.get(host, 0.0) + seconds
    return hosts


def measure(fleet: Fleet, count: int, results: Path) -> None:
    limit = ",".join(h.name for h in sorted(fleet.hosts(), key=lambda h: h.name)[:count])
    run_id = f"hosts-{count}"
    train = playbook(fleet, results, run_id, "--tags", "train", "--limit", limit)
    sweep = playbook(fleet, results, run_id, "--tags", "sweep", "--limit", limit)
    fetch = playbook(fleet, results, run_id, "--tags", "fetch", "--limit", limit)
    perf = perf_analyzer_seconds(results, run_id)
    perf_mean = sum(perf.values()) / len(perf)
    total = train + sweep + fetch
    print(f"{count} host(s): train {train:6.1f} s, sweep {sweep:6.1f} s, fetch {fetch:5.1f} s: pipeline {total:6.1f} s")
    print(f"  perf_analyzer per host {perf_mean:6.1f} s ({len(perf)} host(s))")
    outside_sweep, outside_all = 1 - perf_mean / sweep, 1 - perf_mean / total
    print(f"  outside perf_analyzer: {outside_sweep:6.1%} of the sweep stage, {outside_all:6.1%} of the pipeline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp) / "fleet", name="bench-pipeline")
        fleet.down(log=lambda _: None)
        results = Path(tmp) / "results"
        try:
            fleet.up(max(args.hosts), log=lambda _: None)
            site = playbook(fleet, results, "prepare", "--tags", "site")
            print(f"site.yml on {max(args.hosts)} host(s) (one-off install): {site:6.1f} s", flush=True)
            for count in args.hosts:
                measure(fleet, count, results)
        finally:
            fleet.down(log=lambda _: None)


if __name__ == "__main__":
    main()
