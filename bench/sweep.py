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
import shutil
import sys
import threading
from pathlib import Path

from bench import facts
from bench.capacity_run import run_capacity_instance
from bench.hostfact import read_host_fact
from bench.instance import record_instance, run_attempt
from bench.jobfile import load_job
from bench.layout import CSV_NAME, META_NAME, SERVER_ERROR_NAME, now, staging_dir, write_rows
from bench.records import CapacitySearch, Evidence, InstanceRecord, levels_of, load

REQUIRED = ("run_id", "host", "model", "config", "results_dir", "instances")
DEFAULTS = {"timeout_s": facts.CLIENT_TIMEOUT_S, "retries": facts.CLIENT_RETRIES, "perf_analyzer": "perf_analyzer"}


def run_instance(job: dict, instance: dict, results_dir: Path) -> dict:
    """Measure one instance; return its metadata (also written to metadata.json)."""
    final = results_dir / instance["name"]
    if (final / META_NAME).is_file():
        meta = load(InstanceRecord, (final / META_NAME).read_text()).to_json()
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
            search = CapacitySearch(
                kind="capacity", valid=False, reason=reason, p99_budget_ms=float(config["p99_budget_ms"])
            )
            extra |= {"status": "failed", "search": search.to_json()}
        return record_instance(job, instance, staging, final, expected, [], [], now(), extra)
    if capacity:
        return run_capacity_instance(job, instance, staging, final)
    interval = int(config["measurement_interval_ms"])
    header: list[str] = []
    by_level: dict[int, dict[str, str]] = {}
    evidence: dict[int, Evidence] = {}  # each level's, from the attempt its row comes from
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
        attempt_header, rows, _, record, levels = run_attempt(job, instance, staging, attempt, todo, interval)
        header = header or attempt_header
        seen = {e.level: e for e in levels}
        for row in rows:
            level = int(row["Concurrency"])
            if level not in by_level and level in seen:
                evidence[level] = seen[level]
            by_level.setdefault(level, row)
        attempts.append(record)
        interval *= 2  # a longer window is what stabilises a noisy level
    reached = sorted(level for level in expected if level in by_level)
    if header and by_level:
        write_rows(staging / CSV_NAME, header, [by_level[level] for level in reached])
    extra: dict = {"host_facts_start": facts_at_start} if facts_at_start is not None else {}
    if evidence:
        extra["evidence"] = [evidence[level].to_json() for level in sorted(evidence)]
    return record_instance(job, instance, staging, final, expected, reached, attempts, started, extra)


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
    return {name: summary(outcome) for name, outcome in sorted(outcomes.items())}


def summary(outcome: dict) -> dict:
    """What the sweep stage shows of an instance; a search's capacity and validity too."""
    shown = {k: outcome.get(k) for k in ("status", "levels_reached", "levels_failed", "skipped", "error")}
    if outcome.get("search"):
        shown |= {k: outcome["search"].get(k) for k in ("capacity", "valid", "reason")}
    return shown


def main(argv: list[str] | None = None) -> int:
    job = load_job(argv, "sweep", REQUIRED)
    if job is None:
        return 2
    print(json.dumps(run_job(job), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
