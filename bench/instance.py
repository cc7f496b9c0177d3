"""One instance's measurement, whatever drives it (the grid in bench.sweep, the capacity search in
bench.capacity_run): the perf_analyzer command, a run of it under a hard timeout, the record of that
attempt, what its output says, and the published result. Standard library only: it runs on the hosts.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from pathlib import Path

from bench.evidence import Reading, Watch, evidence, watch_for
from bench.hostfact import read_host_fact
from bench.layout import instance_metadata, publish_instance, read_rows, write_atomically
from bench.records import Evidence

# perf_analyzer's output: the requests of a level's stable windows, one line per window (with -v), and
# what it says when a level never stabilised (a noisy level, not a lost server).
REQUEST_COUNT = re.compile(r"^\s*Request count: (\d+)", re.MULTILINE)
WINDOW = re.compile(r"^\s*Pass \[\d+\]", re.MULTILINE)
UNSTABLE = "stable measurement"
# In request-rate mode perf_analyzer says when it could not send on schedule, and the rate it managed
# (neither is in its CSV): "... not able to keep up with the desired request rate. 60.78% of the
# requests were delayed." and "Avg send request rate: 143.59 infer/sec".
DELAYED = re.compile(r"not able to keep up with the desired request rate\. ([0-9.]+)% of the requests were delayed")
SEND_RATE = re.compile(r"^\s*Avg send request rate: ([0-9.]+)", re.MULTILINE)
# Where a level's measurement begins and ends in perf_analyzer's output (it flushes each line): its
# "Request concurrency: 4" / "Request Rate: 50 inference requests per seconds", and its result
# ("Client:") or its failure to stabilise.
LEVEL_START = re.compile(r"^Request (?:concurrency: (\d+)\s*$|Rate: ([0-9.]+) inference requests)")
READER_GRACE_S = 10  # how long the output is read after perf_analyzer ended
LEVEL_END = re.compile(r"^\s*Client:|Failed to obtain stable measurement")


def perf_command(
    job: dict,
    instance: dict,
    levels: list[int],
    interval_ms: int,
    csv_path: Path,
    rate: tuple[float, int] | None = None,
) -> list[str]:
    """perf_analyzer's command for LEVELS of concurrency (a closed loop), or, given RATE (requests per
    second, client threads), for one open-loop level: that rate of arrivals drawn from the config's
    request distribution, sent by that many threads."""
    config = job["config"]
    input_data = job.get("input_data_file") or "random"
    # A capacity search judges the budget itself: perf_analyzer writes no row for a level over its
    # threshold, and the level that breaks the budget is part of the curve.
    latency_threshold = (
        [] if config.get("search") == "capacity" else ["--latency-threshold", str(config["latency_threshold_ms"])]
    )
    if rate is None:
        step = levels[1] - levels[0] if len(levels) > 1 else 1
        load = ["--concurrency-range", f"{levels[0]}:{levels[-1]}:{step}"]
    else:
        asked, threads = rate
        load = ["--request-rate-range", f"{asked:g}:{asked:g}:1", "--max-threads", str(threads)]
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
        *load,
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


def run_perf(
    cmd: list[str], timeout: float, watch: Watch | None = None
) -> tuple[int | None, str, bool, float, list[Evidence]]:
    """Exit code (None when it did not finish), output, whether it timed out, seconds taken, and with a
    WATCH the evidence of each level the output shows (read while it runs)."""
    began = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as err:
        return None, f"could not run perf_analyzer: {err}", False, time.monotonic() - began, []
    out: list[str] = []
    err: list[str] = []
    marks: list[tuple[Reading, dict[str, float]]] = []  # a reading, and at a level's start its key (level or rate)
    if watch is not None:
        watch.start(proc.pid)
        marks.append((watch.read(bounds=True), {}))

    def read(stream: object, lines: list[str]) -> None:
        for line in stream or []:  # type: ignore[attr-defined]
            lines.append(line)
            if watch is None:
                continue
            start = LEVEL_START.match(line)
            if start:
                key = {"level": int(start.group(1))} if start.group(1) else {"rate": float(start.group(2))}
                marks.append((watch.read(bounds=True), key))
            elif LEVEL_END.search(line):  # its result on stdout, its failure to stabilise on stderr
                marks.append((watch.read(bounds=True), {}))

    readers = [
        threading.Thread(target=read, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=read, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    for reader in readers:
        # a process that inherited the pipes and outlived perf_analyzer must not hold the runner
        reader.join(timeout=READER_GRACE_S)
    levels = []
    if watch is not None:
        watch.stop()
        marks.append((watch.read(), {}))
        levels = level_evidence(watch, sorted(marks, key=lambda mark: mark[0].t))
    exit_code = None if timed_out else proc.returncode
    return exit_code, "".join(out) + "".join(err), timed_out, time.monotonic() - began, levels


def level_evidence(watch: Watch, marks: list[tuple[Reading, dict[str, float]]]) -> list[Evidence]:
    """Each level's evidence: from its start mark to the next mark in time (its result, its failure,
    the next level or the end)."""
    return [evidence(watch, reading, marks[i + 1][0], **key) for i, (reading, key) in enumerate(marks[:-1]) if key]


def note_progress(job: dict, instance: dict, what: str) -> None:
    """Say what INSTANCE measures now, where the job's queue runner (bench.queue) reads it for its
    progress file; a job without a progress_dir (run by hand or by a test) says nothing. Never raises:
    progress is no reason to lose a measurement."""
    if not job.get("progress_dir"):
        return
    with contextlib.suppress(OSError):
        write_atomically(Path(job["progress_dir"]) / str(instance["name"]), what)


def run_attempt(
    job: dict,
    instance: dict,
    staging: Path,
    attempt: int,
    levels: list[int],
    interval: int,
    *more: str,
    rate: tuple[float, int] | None = None,
) -> tuple[list[str], list[dict[str, str]], str, dict, list[Evidence]]:
    """perf_analyzer once, as attempt N of an instance, for LEVELS (or one open-loop RATE: requests per
    second, threads; MORE: extra arguments): its CSV and its command and output (attempt-N.csv,
    attempt-N.log) in STAGING. Returns the CSV's header and rows, the output, what metadata.json
    keeps of the attempt, and the evidence of each level it measured (unless the job says `evidence:
    false`)."""
    csv_path = staging / f"attempt-{attempt}.csv"
    cmd = [*perf_command(job, instance, levels, interval, csv_path, rate), *more]
    measuring = f"{rate[0]:g} requests/s" if rate else "concurrency " + ",".join(map(str, levels))
    note_progress(job, instance, f"attempt {attempt}: {measuring}")
    exit_code, output, timed_out, seconds, seen = run_perf(cmd, float(job["timeout_s"]), watch_for(job, instance))
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
            "levels_reached": sorted(int(r["Concurrency"]) for r in rows if "Concurrency" in r),
            "last_output_line": output.strip().splitlines()[-1] if output.strip() else "",
            **({"rate_asked": rate[0], "max_threads": rate[1]} if rate else {}),
        },
        seen,
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
