"""Host side of a sweep: run the perf_analyzer clients of one (model, config) against its servers.

    python -m modelzoo.sweep JOB.json

The job (written by the sweep stage) names the run, host, model, config knobs, the server
instances (port, the CPUs the client is pinned to) and where results go. Each instance's client
runs concurrently with the others, pinned with taskset, under a hard timeout. perf_analyzer stops a
concurrency sweep at the first level that is unstable or over the latency threshold and still exits 0
unless that was the first level, so completeness is read from the CSV, not assumed: levels it never
reached are retried from the first missing one with a doubled measurement window, a bounded number
of times, and what still fails is recorded as failed. Nothing here raises on a bad measurement.

Results of an instance land in <results_dir>/<instance>/ (perf.csv, attempt-N.csv and .log,
metadata.json), written in a staging directory and renamed when complete, so a reader never sees
half a result and a finished instance is never run or written again.
Shipped with the host package; standard library only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from modelzoo.jobfile import load_job

CSV_NAME = "perf.csv"
META_NAME = "metadata.json"


def now() -> str:
    return datetime.now(UTC).isoformat()


def levels_of(concurrency_range: str) -> list[int]:
    parts = [int(p) for p in concurrency_range.split(":")]
    start, end, step = parts[0], parts[1], parts[2] if len(parts) > 2 else 1
    return list(range(start, end + 1, step))


def read_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a perf_analyzer CSV (rows come sorted by throughput, not concurrency)."""
    reader = csv.DictReader(io.StringIO(text))
    rows = [row for row in reader if row.get("Concurrency", "").strip().isdigit()]
    return list(reader.fieldnames or []), rows


def perf_command(job: dict, instance: dict, levels: list[int], interval_ms: int, csv_path: Path) -> list[str]:
    config = job["config"]
    step = levels[1] - levels[0] if len(levels) > 1 else 1
    input_data = job.get("input_data_file") or "random"
    cmd = []
    if instance.get("client_cpus"):
        cmd += ["taskset", "-c", str(instance["client_cpus"])]
    cmd += [
        job.get("perf_analyzer", "perf_analyzer"),
        "-m",
        job["model"],
        "--service-kind",
        "tfserving",
        "-i",
        "grpc",
        "-u",
        f"localhost:{instance['port']}",
        "-b",
        str(config["batch_size"]),
        "--concurrency-range",
        f"{levels[0]}:{levels[-1]}:{step}",
        "-p",
        str(interval_ms),
        "-s",
        str(config["stability_percentage"]),
        "--max-trials",
        str(config["max_trials"]),
        "--latency-threshold",
        str(config["latency_threshold_ms"]),
        "--percentile",
        str(config["percentile"]),
        "--request-distribution",
        config["request_distribution"],
        "--input-data",
        input_data,
        "-f",
        str(csv_path),
        "--verbose-csv",
    ]
    return cmd


def run_instance(job: dict, instance: dict, results_dir: Path) -> dict:
    """Measure one instance; return its metadata (also written to metadata.json)."""
    final = results_dir / instance["name"]
    if (final / META_NAME).is_file():
        meta = json.loads((final / META_NAME).read_text())
        return {**meta, "skipped": True}
    staging = results_dir / f".{instance['name']}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = job["config"]
    expected = levels_of(config["concurrency_range"])
    if job.get("server_error"):
        # The servers never became ready: nothing to measure, but the point is recorded as failed.
        (staging / "server-error.log").write_text(str(job["server_error"]) + "\n")
        return _record(job, instance, staging, final, expected, [], [], now(), {"server_error": job["server_error"]})
    interval = int(config["measurement_interval_ms"])
    timeout = float(job.get("timeout_s", 600))
    header: list[str] = []
    by_level: dict[int, dict[str, str]] = {}
    attempts = []
    started = now()
    for attempt in range(1, int(job.get("retries", 2)) + 2):
        missing = [level for level in expected if level not in by_level]
        if not missing:
            break
        # Retry from the first level not reached: perf_analyzer stops at the first failure.
        todo = [level for level in expected if level >= missing[0]]
        csv_path = staging / f"attempt-{attempt}.csv"
        cmd = perf_command(job, instance, todo, interval, csv_path)
        began = time.monotonic()
        timed_out = False
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            exit_code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:
            timed_out, exit_code = True, None
            output = (err.stdout or "") + (err.stderr or "") if isinstance(err.stdout, str) else ""
        except OSError as err:
            exit_code, output = None, f"could not run perf_analyzer: {err}"
        (staging / f"attempt-{attempt}.log").write_text(" ".join(cmd) + "\n\n" + output)
        rows = []
        if csv_path.is_file():
            attempt_header, rows = read_rows(csv_path.read_text())
            header = header or attempt_header
        for row in rows:
            by_level.setdefault(int(row["Concurrency"]), row)
        attempts.append(
            {
                "attempt": attempt,
                "command": cmd,
                "exit_code": exit_code,
                "timed_out": timed_out,
                "seconds": round(time.monotonic() - began, 3),
                "measurement_interval_ms": interval,
                "levels_asked": todo,
                "levels_reached": sorted(int(r["Concurrency"]) for r in rows),
                "last_output_line": output.strip().splitlines()[-1] if output.strip() else "",
            }
        )
        interval *= 2  # a longer window is what stabilises a noisy level
    reached = sorted(level for level in expected if level in by_level)
    if header and by_level:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        for level in reached:
            writer.writerow(by_level[level])
        (staging / CSV_NAME).write_text(buffer.getvalue())
    return _record(job, instance, staging, final, expected, reached, attempts, started, {})


def _record(
    job: dict,
    instance: dict,
    staging: Path,
    final: Path,
    expected: list[int],
    reached: list[int],
    attempts: list[dict],
    started: str,
    extra: dict,
) -> dict:
    """Write metadata.json into the staging directory and publish it under its final name."""
    config = job["config"]
    failed = [level for level in expected if level not in reached]
    meta = {
        "schema": 1,
        "run_id": job["run_id"],
        "host": job["host"],
        "model": job["model"],
        "config_id": config["config_id"],
        "config": config,
        "instance": instance,
        "status": "complete" if not failed else ("partial" if reached else "failed"),
        "levels_expected": expected,
        "levels_reached": reached,
        "levels_failed": failed,
        "attempts": attempts,
        "started_at": started,
        "finished_at": now(),
        **{k: v for k, v in job.get("metadata", {}).items() if k not in ("status",)},
        **extra,
    }
    (staging / META_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(staging, final)
    return {**meta, "skipped": False}


def run_job(job: dict) -> dict:
    results_dir = Path(job["results_dir"])
    results_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, dict] = {}

    def worker(instance: dict) -> None:
        try:
            outcomes[instance["name"]] = run_instance(job, instance, results_dir)
        except Exception as err:
            outcomes[instance["name"]] = {"status": "error", "error": f"{type(err).__name__}: {err}"}

    threads = [threading.Thread(target=worker, args=(i,)) for i in job["instances"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        name: {k: outcome.get(k) for k in ("status", "levels_reached", "levels_failed", "skipped", "error")}
        for name, outcome in sorted(outcomes.items())
    }


def main(argv: list[str] | None = None) -> int:
    job = load_job(argv, "sweep", ("run_id", "host", "model", "config", "results_dir", "instances"))
    if job is None:
        return 2
    print(json.dumps(run_job(job), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
