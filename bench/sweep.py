"""Host side of a sweep: run the perf_analyzer clients of one (model, config) against its servers.

    python -m bench.sweep JOB.json

The job (written by the sweep stage) names the run, host, model, config knobs, the server
instances (port, the CPUs the client is pinned to) and where results go. Each instance's client
runs concurrently with the others, pinned with taskset, under a hard timeout. perf_analyzer stops a
concurrency sweep at the first level that is unstable or over the latency threshold and still exits 0
unless that was the first level, so completeness is read from the CSV, not assumed: levels it never
reached are retried from the first missing one with a doubled measurement window, a bounded number
of times, and what still fails is recorded as failed. Nothing here raises on a bad measurement.

Results of an instance land in <results_dir>/<instance>/ (perf.csv, attempt-N.csv and .log,
metadata.json), written in a staging directory and renamed when complete, so a reader never sees
half a result and a finished instance is never run or written again. The job's `host_fact`
names the host's fact executable, read when the instance is recorded (bench.hostfact).
Shipped to the hosts with the model zoo; standard library only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import facts
from bench.capacity import Level, SearchCut, search
from bench.hostfact import read_host_fact
from bench.jobfile import load_job
from bench.layout import (
    CSV_NAME,
    META_NAME,
    SERVER_ERROR_NAME,
    instance_metadata,
    levels_of,
    now,
    publish_instance,
    read_rows,
    staging_dir,
    write_rows,
)

REQUIRED = ("run_id", "host", "model", "config", "results_dir", "instances")
DEFAULTS = {"timeout_s": facts.CLIENT_TIMEOUT_S, "retries": facts.CLIENT_RETRIES, "perf_analyzer": "perf_analyzer"}


def perf_command(job: dict, instance: dict, levels: list[int], interval_ms: int, csv_path: Path) -> list[str]:
    config = job["config"]
    step = levels[1] - levels[0] if len(levels) > 1 else 1
    input_data = job.get("input_data_file") or "random"
    # A capacity search judges the budget itself: perf_analyzer writes no row for a level over its
    # threshold, and the level that breaks the budget is part of the curve.
    latency_threshold = (
        [] if config.get("search") == "capacity" else ["--latency-threshold", str(config["latency_threshold_ms"])]
    )
    cmd = []
    if instance.get("client_cpus"):
        cmd += ["taskset", "-c", str(instance["client_cpus"])]
    cmd += [
        job["perf_analyzer"],
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
        "--percentile",
        str(config["percentile"]),
        *latency_threshold,
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
    staging = staging_dir(final)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = job["config"]
    capacity = config.get("search", "grid") == "capacity"
    expected = [] if capacity else levels_of(config["concurrency_range"])
    if job.get("server_error"):
        # The servers never became ready: nothing to measure, but the point is recorded as failed.
        (staging / SERVER_ERROR_NAME).write_text(str(job["server_error"]) + "\n")
        extra: dict = {"server_error": job["server_error"]}
        if capacity:
            reason = f"the servers never became ready: {job['server_error']}"
            extra |= {"status": "failed", "search": {"kind": "capacity", "valid": False, "reason": reason}}
        return _record(job, instance, staging, final, expected, [], [], now(), extra)
    if capacity:
        return run_capacity_instance(job, instance, staging, final)
    interval = int(config["measurement_interval_ms"])
    timeout = float(job["timeout_s"])
    header: list[str] = []
    by_level: dict[int, dict[str, str]] = {}
    attempts = []
    started = now()
    # The host as it was when the measurement began; _record reads it again at the end, so a change
    # during the run (a governor, THP, a sysctl) shows in the result.
    facts_at_start = read_host_fact(job["host_fact"]) if job.get("host_fact") else None
    for attempt in range(1, int(job["retries"]) + 2):
        missing = [level for level in expected if level not in by_level]
        if not missing:
            break
        # Retry from the first level not reached: perf_analyzer stops at the first failure.
        todo = [level for level in expected if level >= missing[0]]
        csv_path = staging / f"attempt-{attempt}.csv"
        cmd = perf_command(job, instance, todo, interval, csv_path)
        exit_code, output, timed_out, seconds = _run(cmd, timeout)
        (staging / f"attempt-{attempt}.log").write_text(" ".join(cmd) + "\n\n" + output)
        rows = []
        if csv_path.is_file():
            attempt_header, rows = read_rows(csv_path.read_text())
            header = header or attempt_header
        for row in rows:
            by_level.setdefault(int(row["Concurrency"]), row)
        attempts.append(_attempt(attempt, cmd, exit_code, timed_out, seconds, interval, todo, rows, output))
        interval *= 2  # a longer window is what stabilises a noisy level
    reached = sorted(level for level in expected if level in by_level)
    if header and by_level:
        write_rows(staging / CSV_NAME, header, [by_level[level] for level in reached])
    extra = {"host_facts_start": facts_at_start} if facts_at_start is not None else {}
    return _record(job, instance, staging, final, expected, reached, attempts, started, extra)


REQUEST_COUNT = re.compile(r"^\s*Request count: (\d+)", re.MULTILINE)
WINDOW = re.compile(r"^\s*Pass \[\d+\]", re.MULTILINE)
UNSTABLE = "stable measurement"


def run_capacity_instance(job: dict, instance: dict, staging: Path, final: Path) -> dict:
    """`search: capacity`: grow and narrow the load (bench.capacity), one perf_analyzer run a level,
    against the servers of this config's lifetime. Every level measured is kept in perf.csv."""
    config = job["config"]
    timeout = float(job["timeout_s"])
    header: list[str] = []
    rows: dict[int, dict[str, str]] = {}
    attempts: list[dict] = []
    started, began_search = now(), time.monotonic()
    facts_at_start = read_host_fact(job["host_fact"]) if job.get("host_fact") else None

    def measure(level: int) -> Level | None:
        nonlocal header
        interval = int(config["measurement_interval_ms"])
        output = ""
        for _ in range(int(job["retries"]) + 1):
            attempt = len(attempts) + 1
            csv_path = staging / f"attempt-{attempt}.csv"
            cmd = [*perf_command(job, instance, [level], interval, csv_path), "-v"]
            exit_code, output, timed_out, seconds = _run(cmd, timeout)
            (staging / f"attempt-{attempt}.log").write_text(" ".join(cmd) + "\n\n" + output)
            found = read_rows(csv_path.read_text()) if csv_path.is_file() else ([], [])
            header = header or found[0]
            attempts.append(_attempt(attempt, cmd, exit_code, timed_out, seconds, interval, [level], found[1], output))
            if found[1]:
                row = found[1][0]
                rows[level] = row
                counts = REQUEST_COUNT.findall(output)
                windows = len(WINDOW.findall(output))
                return Level(
                    level,
                    float(row["Inferences/Second"]),
                    float(row["p50 latency"]),
                    float(row["p99 latency"]),
                    int(counts[-1]) if counts else 0,
                    windows,
                )
            if UNSTABLE not in output:
                break  # not a noisy level: the server or the client is gone
            interval *= 2
        if UNSTABLE in output:
            return None
        last = output.strip().splitlines()[-1] if output.strip() else f"perf_analyzer exited {exit_code}"
        raise SearchCut(f"level {level}: {last}")

    outcome = search(
        measure,
        float(config["p99_budget_ms"]),
        float(config["min_gain_percent"]),
        int(config["max_concurrency"]),
    )
    if header and rows:
        write_rows(staging / CSV_NAME, header, [rows[level] for level in sorted(rows)])
    record = outcome.record() | {"seconds": round(time.monotonic() - began_search, 3)}
    extra: dict = {"search": record}
    if outcome.error:
        extra["status"] = "failed"
    if facts_at_start is not None:
        extra["host_facts_start"] = facts_at_start
    asked = sorted({a["levels_asked"][0] for a in attempts})
    return _record(job, instance, staging, final, asked, sorted(rows), attempts, started, extra)


def _run(cmd: list[str], timeout: float) -> tuple[int | None, str, bool, float]:
    """Exit code (None when it did not finish), output, whether it timed out, seconds taken."""
    began = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, proc.stdout + proc.stderr, False, time.monotonic() - began
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or "") + (err.stderr or "") if isinstance(err.stdout, str) else ""
        return None, output, True, time.monotonic() - began
    except OSError as err:
        return None, f"could not run perf_analyzer: {err}", False, time.monotonic() - began


def _attempt(
    attempt: int,
    cmd: list[str],
    exit_code: int | None,
    timed_out: bool,
    seconds: float,
    interval: int,
    asked: list[int],
    rows: list[dict[str, str]],
    output: str,
) -> dict:
    return {
        "attempt": attempt,
        "command": cmd,
        "exit_code": exit_code,
        "timed_out": timed_out,
        "seconds": round(seconds, 3),
        "measurement_interval_ms": interval,
        "levels_asked": asked,
        "levels_reached": sorted(int(r["Concurrency"]) for r in rows),
        "last_output_line": output.strip().splitlines()[-1] if output.strip() else "",
    }


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
    meta = instance_metadata(job, instance, expected, reached, attempts, started)
    if job.get("host_fact"):
        meta["host_facts"] = read_host_fact(job["host_fact"])
    meta |= extra
    publish_instance(staging, final, meta)
    return {**meta, "skipped": False}


def run_job(job: dict) -> dict:
    job = DEFAULTS | job
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
    job = load_job(argv, "sweep", REQUIRED)
    if job is None:
        return 2
    print(json.dumps(run_job(job), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
