"""One instance's measurement, whatever drives it (the grid in bench.sweep, the capacity search in
bench.capacity_run): the perf_analyzer command, a run of it under a hard timeout, the record of that
attempt, what its output says, and the published result. Standard library only: it runs on the hosts.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from bench.hostfact import read_host_fact
from bench.layout import instance_metadata, publish_instance, read_rows

# perf_analyzer's output: the requests of a level's stable windows, one line per window (with -v), and
# what it says when a level never stabilised (a noisy level, not a lost server).
REQUEST_COUNT = re.compile(r"^\s*Request count: (\d+)", re.MULTILINE)
WINDOW = re.compile(r"^\s*Pass \[\d+\]", re.MULTILINE)
UNSTABLE = "stable measurement"


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


def run_perf(cmd: list[str], timeout: float) -> tuple[int | None, str, bool, float]:
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


def run_attempt(
    job: dict, instance: dict, staging: Path, attempt: int, levels: list[int], interval: int, *more: str
) -> tuple[list[str], list[dict[str, str]], str, dict]:
    """perf_analyzer once, as attempt N of an instance, for LEVELS (MORE: extra arguments): its CSV and its
    command and output (attempt-N.csv, attempt-N.log) in STAGING. Returns the CSV's header and rows, the
    output, and what metadata.json keeps of the attempt."""
    csv_path = staging / f"attempt-{attempt}.csv"
    cmd = [*perf_command(job, instance, levels, interval, csv_path), *more]
    exit_code, output, timed_out, seconds = run_perf(cmd, float(job["timeout_s"]))
    (staging / f"attempt-{attempt}.log").write_text(" ".join(cmd) + "\n\n" + output)
    header, rows = read_rows(csv_path.read_text()) if csv_path.is_file() else ([], [])
    return (
        header,
        rows,
        output,
        {
            "attempt": attempt,
            "command": cmd,
            "exit_code": exit_code,
            "timed_out": timed_out,
            "seconds": round(seconds, 3),
            "measurement_interval_ms": interval,
            "levels_asked": levels,
            "levels_reached": sorted(int(r["Concurrency"]) for r in rows),
            "last_output_line": output.strip().splitlines()[-1] if output.strip() else "",
        },
    )


def record_instance(
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
    """Write metadata.json (an InstanceRecord) into the staging directory and publish it under its final
    name."""
    meta = instance_metadata(job, instance, expected, reached, attempts, started)
    if job.get("host_fact"):
        meta["host_facts"] = read_host_fact(job["host_fact"])
    meta |= extra
    return {**publish_instance(staging, final, meta).to_json(), "skipped": False}
