"""Benchmark: collector ingest rate and report time on generated nightly history, against SQLite's own
bulk CSV import (`.import`) of the same files. Prints figures; asserts nothing.

The issue's full size is ~100 hosts x 5 models x 20 configs x 10 points x 365 nights (36.5 M points,
3.65 M result directories); --nights and --hosts scale it down to what a small machine holds, and the
rates are what carries over. Run inside .venv: python benchmarks/collector_ingest.py [--nights 7]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import facts
from collect.ingest import ingest
from collect.report import build_report
from collect.store import Store
from sim.results import simulated_metadata

MODELS = facts.MODELS
HEADER = (
    "Concurrency,Inferences/Second,Client Send,Client Recv,p50 latency,p90 latency,p95 latency,"
    "p99 latency,Avg latency,request/response,response wait\n"
)


def generate(root: Path, nights: int, hosts: int, configs: int, points: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    files = 0
    for night in range(nights):
        run = f"2026-{1 + night // 28:02d}-{1 + night % 28:02d}"
        for h in range(hosts):
            host = f"kp-{h:03d}"
            for model in MODELS:
                for c in range(configs):
                    config = f"{model}-entire-b256-{c:010x}"
                    directory = root / run / host / model / config / "numa0"
                    directory.mkdir(parents=True)
                    base = 1000.0 * (1 + MODELS.index(model)) * (1 + c / configs)
                    rows = []
                    for level in range(1, points + 1):
                        tput = base * (1 - 0.5**level) * rng.uniform(0.97, 1.03)
                        lat = 1000.0 * level * rng.uniform(0.9, 1.1)
                        rows.append(
                            f"{level},{tput:.2f},30,0,{lat:.0f},{lat * 1.3:.0f},{lat * 1.4:.0f},"
                            f"{lat * 1.6:.0f},{lat * 1.1:.0f},30,{lat:.0f}\n"
                        )
                    rng.shuffle(rows)  # perf_analyzer sorts by throughput, not concurrency
                    (directory / "perf.csv").write_text(HEADER + "".join(rows))
                    levels = list(range(1, points + 1))
                    meta = simulated_metadata(run, host, model, config, "numa0", levels, [], f"1:{points}:1", 256)
                    (directory / "metadata.json").write_text(json.dumps(meta))
                    files += 1
    return files


def sqlite_bulk_import(root: Path, db: Path) -> float:
    """The database's own CSV reader: one sqlite3 process running .import for every CSV."""
    script = [
        "CREATE TABLE raw (c INTEGER, tput REAL, send REAL, recv REAL, p50 REAL, p90 REAL, p95 REAL, "
        "p99 REAL, avg REAL, rr REAL, wait REAL);",
        ".mode csv",
    ]
    script += [f".import --skip 1 '{path}' raw" for path in sorted(root.glob("*/*/*/*/*/perf.csv"))]
    start = time.perf_counter()
    subprocess.run(["sqlite3", str(db)], input="\n".join(script) + "\n", text=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nights", type=int, default=7)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--points", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        start = time.perf_counter()
        instances = generate(root, args.nights, args.hosts, args.configs, args.points)
        rows = instances * args.points
        print(f"generated {instances:,} instance results, {rows:,} points in {time.perf_counter() - start:.1f} s")
        with Store(Path(tmp) / "store.sqlite") as store:
            start = time.perf_counter()
            report = ingest(root, store)
            ours = time.perf_counter() - start
            assert report.added == instances and not report.problems
            start = time.perf_counter()
            build_report(store, None, Path(tmp) / "reports")
            report_seconds = time.perf_counter() - start
        bulk = sqlite_bulk_import(root, Path(tmp) / "bulk.sqlite")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"collector ingest (validated):   {rows / ours:>12,.0f} rows/s  ({ours:.1f} s)")
        print(f"sqlite3 .import (no checks):     {rows / bulk:>12,.0f} rows/s  ({bulk:.1f} s)")
        print(f"ratio collector / bulk import:   {bulk / ours:>12.2f}")
        print(f"report of the last night:        {report_seconds:>12.1f} s")
        print(f"peak memory of this process:     {peak_mb:>12.0f} MiB")
        full = 100 * 5 * 20 * 10 * 365
        print(f"full size ({full:,} points) at this rate: about {full / (rows / ours) / 60:.0f} min of ingest")


if __name__ == "__main__":
    main()
