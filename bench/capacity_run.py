"""Host side of `search: capacity` (bench.capacity decides the levels): one perf_analyzer run a level,
against the servers of this config's lifetime, each level retried with a doubled window while
perf_analyzer cannot stabilise it. Every level measured is kept in perf.csv; a lost server cuts the
search, keeping what it measured, and the point is recorded as failed. Standard library only.

An open loop (`load: poisson`) measures request rates: perf_analyzer's request-rate mode with Poisson
arrivals, each thread one request in flight, so the threads are sized from the rate and the latency
seen (Little's law, with room for the tail), bounded by max_threads and recorded. A level perf_analyzer
says it sent late (over 1 % of its requests delayed) is measured again with twice the threads, then kept
as client-bound: it measured the client, not the server.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from bench.capacity import SearchCut, client_bound, search, search_rate
from bench.evidence import watch_for
from bench.hostfact import read_host_fact
from bench.instance import DELAYED, REQUEST_COUNT, SEND_RATE, UNSTABLE, WINDOW, record_instance, run_attempt, run_perf
from bench.layout import CSV_NAME, now, write_rows
from bench.loadgen_run import RESULT_NAME
from bench.records import MAX_DELAYED_PERCENT, CapacitySearch, Evidence, Level, limit_of

MIN_THREADS = 4  # perf_analyzer's own default
THREAD_HEADROOM = 2.0  # threads per request in flight at the latency seen: the tail needs room
LATE_RETRIES = 2  # how often a late level is measured again with twice the threads


def threads_for(rate: float, latency_s: float, most: int) -> int:
    """Client threads for RATE requests/s when a request takes LATENCY_S: Little's law's requests in
    flight, times the headroom, at least MIN_THREADS, at most MOST (which wins)."""
    return min(most, max(MIN_THREADS, math.ceil(rate * latency_s * THREAD_HEADROOM)))


def measured_level(row: dict[str, str], output: str, level: int | None, **open_loop: object) -> Level:
    """The Level a perf_analyzer run measured: its CSV ROW, and from its -v OUTPUT the requests of its
    stable windows and how many windows it took (LEVEL: the concurrency; None and OPEN_LOOP: a rate)."""
    counts = REQUEST_COUNT.findall(output)
    return Level(
        level,
        float(row["Inferences/Second"]),
        float(row["p50 latency"]),
        float(row["p99 latency"]),
        int(counts[-1]) if counts else 0,
        len(WINDOW.findall(output)),
        **open_loop,
    )


def last_of(levels: list[Evidence]) -> Evidence | None:
    """A search level's evidence (its run measured one level), without its key (the Level has it)."""
    return dataclasses.replace(levels[-1], level=None, rate=None) if levels else None


def unmeasured(output: str, attempts: list[dict], what: str) -> None:
    """After a level's last attempt wrote no row: None when perf_analyzer could not stabilise it (a noisy
    level), else SearchCut (the server or the client is gone)."""
    if UNSTABLE in output:
        return None
    last = attempts[-1]["last_output_line"] or f"perf_analyzer exited {attempts[-1]['exit_code']}"
    raise SearchCut(f"{what}: {last}")


def run_capacity_instance(job: dict, instance: dict, staging: Path, final: Path) -> dict:
    """Search one instance's capacity; return its metadata (also written to metadata.json)."""
    config = job["config"]
    if config.get("client") == "mlperf":
        return run_loadgen_instance(job, instance, staging, final)
    header: list[str] = []
    rows: dict[float, dict[str, str]] = {}
    attempts: list[dict] = []
    started, began_search = now(), time.monotonic()
    facts_at_start = read_host_fact(job["host_fact"]) if job.get("host_fact") else None

    def measure(level: int) -> Level | None:
        nonlocal header
        interval = int(config["measurement_interval_ms"])
        output = ""
        for _ in range(int(job["retries"]) + 1):
            found_header, found, output, record, levels = run_attempt(
                job, instance, staging, len(attempts) + 1, [level], interval, "-v"
            )
            header = header or found_header
            attempts.append(record)
            if found:
                rows[level] = found[0]
                return measured_level(found[0], output, level, evidence=last_of(levels))
            if UNSTABLE not in output:
                break  # not a noisy level: the server or the client is gone
            interval *= 2
        return unmeasured(output, attempts, f"level {level}")

    latency_seen = [float(config["p99_budget_ms"]) / 1000]  # before any level: as slow as the budget allows

    def measure_rate(rate: float) -> Level | None:
        nonlocal header
        # a window long enough to hold window_requests at this rate: a p99 needs the requests
        interval = max(int(config["measurement_interval_ms"]), math.ceil(1000 * int(config["window_requests"]) / rate))
        most = int(config["max_threads"])
        threads = threads_for(rate, latency_seen[-1], most)
        output, late = "", ""
        attempts_at_most = int(job["retries"]) + LATE_RETRIES + 1
        for tries in range(attempts_at_most):
            found_header, found, output, record, levels = run_attempt(
                job, instance, staging, len(attempts) + 1, [], interval, "-v", rate=(rate, threads)
            )
            header = header or found_header
            attempts.append(record)
            if not found:
                if UNSTABLE in output and tries < int(job["retries"]):
                    interval *= 2
                    continue
                break
            row = found[0]
            batch = int(config["batch_size"])
            delayed = DELAYED.findall(output)
            delayed_percent = float(delayed[-1]) if delayed else 0.0
            sent = SEND_RATE.findall(output)
            throughput = float(row["Inferences/Second"])
            sent_rate = float(sent[-1]) if sent else throughput / batch
            late = ""
            p99 = float(row["p99 latency"])
            if delayed_percent > MAX_DELAYED_PERCENT:
                late = f"{delayed_percent:g} % of requests delayed with {threads} threads"
                # more threads help only a level still within the budget: over it, the schedule kept
                # would only add queueing to a p99 already too high
                last = tries == attempts_at_most - 1
                if threads < most and p99 <= float(config["p99_budget_ms"]) * 1000 and not last:
                    threads = min(most, threads * 2)
                    continue
            rows[rate] = row
            latency_seen.append(max(p99 / 1e6, latency_seen[-1] if late else 0.0))
            return measured_level(
                row,
                output,
                None,
                rate=rate,
                sent_rate=round(sent_rate, 3),
                delayed_percent=delayed_percent,
                threads=threads,
                late=late or None,
                evidence=last_of(levels),
            )
        return unmeasured(output, attempts, f"rate {rate:g}/s")

    if config.get("load") == "poisson":
        outcome = search_rate(
            measure_rate,
            float(config["p99_budget_ms"]),
            float(config["min_gain_percent"]),
            float(config["start_rate"]),
            float(config["max_rate"]),
        )
    else:
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
    if config.get("load") == "poisson":
        extra["rates_reached"] = sorted(rows)
        return record_instance(job, instance, staging, final, [], [], attempts, started, extra)
    asked = sorted({a["levels_asked"][0] for a in attempts})
    return record_instance(job, instance, staging, final, asked, sorted(rows), attempts, started, extra)


LOADGEN_DIR = "loadgen"
# the columns of perf.csv a LoadGen run writes: its performance run as one open-loop point
LOADGEN_CSV = ["Request Rate", "Inferences/Second", "p50 latency", "p90 latency", "p95 latency", "p99 latency"]
LOADGEN_UNAVAILABLE = 3  # bench.loadgen_run's exit code when grpcio or LoadGen is not installed


def loadgen_command(job: dict, instance: dict, out: Path) -> list[str]:
    config = job["config"]
    cmd = ["taskset", "-c", str(instance["client_cpus"])] if instance.get("client_cpus") else []
    cmd += [job.get("loadgen_python") or sys.executable, "-m", "bench.loadgen_run"]
    cmd += ["--port", str(instance["port"]), "--model", job["model"], "--batch", str(config["batch_size"])]
    cmd += ["--budget-ms", f"{float(config['p99_budget_ms']):g}", "--start-qps", f"{float(config['start_rate']):g}"]
    cmd += ["--min-duration-ms", str(config["loadgen_min_duration_ms"]), "--out", str(out)]
    cmd += ["--min-queries", str(config["loadgen_min_queries"])]
    if job.get("input_data_file"):
        cmd += ["--input-data", str(job["input_data_file"])]
    return cmd


def loadgen_search(
    result: dict, batch: int, budget_ms: float, seconds: float, evidence: Evidence | None = None
) -> tuple[CapacitySearch, list]:
    """The capacity LoadGen's performance run stands for, with its verdict: VALID only when LoadGen says
    so, no request failed and issuing never lagged a tenth of the budget; and its perf.csv row. EVIDENCE:
    what the host did during the performance run."""
    run = result["phases"].get("performance", {})
    reasons = list(run.get("reasons", []))
    if run.get("result") != "VALID":
        reasons = [f"LoadGen: {run.get('result', 'no verdict')}", *reasons]
    if run.get("failed_requests"):
        reasons.append(f"{run['failed_requests']} requests failed ({run.get('first_failure')})")
    lag = run.get("issue_lag_p99_us")
    if lag is not None and lag > budget_ms * 100:  # a tenth of the budget, in microseconds
        reasons.append(f"issuing lagged: p99 {lag:g} us")
    level = None
    rows = []
    if "completed_qps" in run and "p99_ns" in run:
        rate = float(run.get("scheduled_qps") or run["settings"]["server_target_qps"])
        level = Level(
            None,
            float(run["completed_qps"]) * batch,
            run.get("p50_ns", 0) / 1000,
            run["p99_ns"] / 1000,
            int(run.get("queries", 0)),
            1,
            rate=round(rate, 6),
            sent_rate=round(float(run["completed_qps"]), 6),
            delayed_percent=None,
            evidence=evidence,
        )
        us = [run.get(k, 0) / 1000 for k in ("p50_ns", "p90_ns", "p95_ns", "p99_ns")]
        rows = [dict(zip(LOADGEN_CSV, [f"{rate:g}", f"{level.throughput:g}", *(f"{u:g}" for u in us)], strict=True))]
    elif not reasons:
        reasons.append("LoadGen wrote no performance summary")
    search = CapacitySearch(
        kind="capacity",
        load="poisson",
        client="mlperf",
        p99_budget_ms=budget_ms,
        valid=not reasons and level is not None,
        reason="; ".join(reasons),
        capacity=level.throughput if level else None,
        level=level,
        curve=[level] if level else [],
        windows=1 if level else 0,
        stopped=f"LoadGen's peak: {result.get('peak_qps', 0):g} queries/s",
        seconds=round(seconds, 3),
        loadgen=result,
        verdict=limit_of(evidence, None, bounded=True) if evidence else None,  # FindPeakPerformance's peak
    )
    if search.valid and search.verdict and search.verdict.limit == "client":
        search = dataclasses.replace(search, valid=False, reason=client_bound(search.verdict.why, level.throughput))
    return search, rows


def run_loadgen_instance(job: dict, instance: dict, staging: Path, final: Path) -> dict:
    """MLPerf LoadGen's Server scenario on one instance (bench.loadgen_run in a child process, under the
    timeout of the config's runs): its peak, its verdict, its logs under loadgen/."""
    config = job["config"]
    started, began = now(), time.monotonic()
    facts_at_start = read_host_fact(job["host_fact"]) if job.get("host_fact") else None
    out = staging / LOADGEN_DIR
    cmd = loadgen_command(job, instance, out)
    timeout = float(job["timeout_s"]) * int(config.get("perf_analyzer_runs") or 1)
    exit_code, output, timed_out, seconds, seen = run_perf(cmd, timeout, watch_for(job, instance))
    (staging / "loadgen.log").write_text(" ".join(cmd) + "\n\n" + output)
    attempt = {
        "attempt": 1,
        "command": cmd,
        "exit_code": exit_code,
        "timed_out": timed_out,
        "seconds": round(seconds, 3),
        "last_output_line": output.strip().splitlines()[-1] if output.strip() else "",
    }
    result_path = out / RESULT_NAME
    extra: dict = {}
    if exit_code == 0 and result_path.is_file():
        search, rows = loadgen_search(
            json.loads(result_path.read_text()),
            int(config["batch_size"]),
            float(config["p99_budget_ms"]),
            time.monotonic() - began,
            last_of(seen),
        )
    else:
        why = "LoadGen is not installed on this host" if exit_code == LOADGEN_UNAVAILABLE else "LoadGen failed"
        search, rows = (
            CapacitySearch(
                kind="capacity",
                load="poisson",
                client="mlperf",
                p99_budget_ms=float(config["p99_budget_ms"]),
                valid=False,
                reason=f"{why}: {attempt['last_output_line'] or f'exit {exit_code}'}",
                seconds=round(time.monotonic() - began, 3),
            ),
            [],
        )
        extra["status"] = "failed"
    if rows:
        write_rows(staging / CSV_NAME, LOADGEN_CSV, rows)
    extra |= {"search": search.to_json(), "rates_reached": [search.level.rate] if search.level else []}
    if facts_at_start is not None:
        extra["host_facts_start"] = facts_at_start
    return record_instance(job, instance, staging, final, [], [], [attempt], started, extra)
