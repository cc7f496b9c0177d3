"""Host side of `search: capacity` (bench.capacity decides the levels): one perf_analyzer run a level,
against the servers of this config's lifetime, each level retried with a doubled window while
perf_analyzer cannot stabilise it. Every level measured is kept in perf.csv; a lost server cuts the
search, keeping what it measured, and the point is recorded as failed. Standard library only.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.capacity import SearchCut, search
from bench.hostfact import read_host_fact
from bench.instance import REQUEST_COUNT, UNSTABLE, WINDOW, record_instance, run_attempt
from bench.layout import CSV_NAME, now, write_rows
from bench.records import Level


def run_capacity_instance(job: dict, instance: dict, staging: Path, final: Path) -> dict:
    """Search one instance's capacity; return its metadata (also written to metadata.json)."""
    config = job["config"]
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
            found_header, found, output, record = run_attempt(
                job, instance, staging, len(attempts) + 1, [level], interval, "-v"
            )
            header = header or found_header
            attempts.append(record)
            if found:
                row = found[0]
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
        last = attempts[-1]["last_output_line"] or f"perf_analyzer exited {attempts[-1]['exit_code']}"
        raise SearchCut(f"level {level}: {last}")

    outcome = search(
        measure,
        float(config["p99_budget_ms"]),
        float(config["min_gain_percent"]),
        int(config["max_concurrency"]),
    )
    if header and rows:
        write_rows(staging / CSV_NAME, header, [rows[level] for level in sorted(rows)])
    record = outcome.record(seconds=round(time.monotonic() - began_search, 3))
    extra: dict = {"search": record.to_json()}
    if outcome.error:
        extra["status"] = "failed"
    if facts_at_start is not None:
        extra["host_facts_start"] = facts_at_start
    asked = sorted({a["levels_asked"][0] for a in attempts})
    return record_instance(job, instance, staging, final, asked, sorted(rows), attempts, started, extra)
