"""Benchmark: capacity under Poisson arrivals (open loop) against the closed loop, LoadGen and
perf_analyzer's own binary search, side by side in one run, with the real perf_analyzer, the real
host-side runner (bench.sweep) and the real MLPerf LoadGen. Prints figures; asserts nothing.

Servers:
- the known-curve server (sim.known_curve: 4 workers, 20 ms exponential service, no contention: an
  M/M/4 queue), whose open-loop truth queueing theory gives (sim.known_curve.queueing);
- the TF-Serving stand-in serving a model zoo export of DLRM (budget: 3x the p99 of one client).

For each: the closed-loop capacity search; the open-loop search (perf_analyzer's request-rate mode);
LoadGen's FindPeakPerformance then PerformanceOnly at the peak (runs of --loadgen-s, MLPerf's are 600 s)
and its verdict; perf_analyzer's `--binary-search` over the same request rates; each with its windows
and seconds. The request-rate grid at the open-loop search's resolution (its last bisection step, from
that step up to the rate that broke the budget) is not run: its windows are counted as its levels times
the three windows every stable level needs at least, a lower bound, so the search's share of it is an
upper bound. The aim: open-loop search within 5 % of the truth using at most 30 % of the grid's windows.

Run inside .venv: python benchmarks/open_loop.py [--loadgen-s 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.controller.local_job import local_job  # noqa: E402
from bench.sweep import run_job  # noqa: E402
from sim.known_curve.queueing import open_loop_capacity  # noqa: E402
from sim.known_curve.server import Curve, launch  # noqa: E402
from sim.ports import free_port  # noqa: E402
from sim.tfserving_standin.process import serving_a_fresh_export, wait_ready  # noqa: E402

VENV = Path(sys.executable).parent.parent
PERF_ANALYZER = str(VENV / "bin" / "perf_analyzer")
CURVE = Curve(workers=4, base_ms=20, contention_ms=0, distribution="exponential")
CURVE_BUDGET_MS = 150.0


def job(port: int, work: Path, profile: str, budget_ms: float, batch: int, **knobs: object) -> dict:
    return local_job(
        profile,
        port,
        work / f"r{time.monotonic_ns()}",
        PERF_ANALYZER,
        timeout_s=600,
        **{
            "batch_size": batch,
            "p99_budget_ms": budget_ms,
            "min_gain_percent": 5.0,
            "percentile": 99,
            "stability_percentage": 50,
            "measurement_interval_ms": 1000,
            **knobs,
        },
    )


def searched(spec: dict) -> tuple[dict, float]:
    began = time.monotonic()
    run_job(spec)
    meta = json.loads((Path(spec["results_dir"]) / "numa0" / "metadata.json").read_text())
    return meta["search"], time.monotonic() - began


def binary_search(port: int, budget_ms: float, batch: int, top: float, step: float, work: Path) -> dict:
    """perf_analyzer's own --binary-search over request rates step..top, under the budget."""
    csv_path = work / f"binary-{time.monotonic_ns()}.csv"
    cmd = [PERF_ANALYZER, "-m", "dlrm", "--service-kind", "tfserving", "-i", "grpc", "-u", f"localhost:{port}"]
    cmd += ["-b", str(batch), "--request-rate-range", f"{step:g}:{top:g}:{step:g}", "--binary-search"]
    cmd += ["--latency-threshold", f"{budget_ms:g}", "--percentile", "99", "--request-distribution", "poisson"]
    cmd += ["--max-threads", "64", "-p", "2000", "-s", "50", "-f", str(csv_path), "-v"]
    began = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.monotonic() - began
    rows = csv_path.read_text().splitlines()[1:] if csv_path.is_file() else []
    best = max((float(r.split(",")[1]) for r in rows), default=0.0)
    return {
        "capacity": best,
        "windows": len(re.findall(r"Pass \[\d+\]", proc.stdout)),
        "seconds": seconds,
        "rows": len(rows),
    }


def loadgen(port: int, work: Path, budget_ms: float, batch: int, start_qps: float, seconds: int) -> dict:
    spec = job(
        port,
        work,
        "ci-mlperf",
        budget_ms,
        batch,
        start_rate=start_qps,
        loadgen_min_duration_ms=seconds * 1000,
        loadgen_min_queries=459,
    )
    search, took = searched(spec)
    run = search["loadgen"]["phases"]["performance"]
    return {
        "peak": search["loadgen"]["peak_qps"] * batch,
        "verdict": run.get("result", "?") + (f" ({'; '.join(run['reasons'])})" if run.get("reasons") else ""),
        "p99_ms": run.get("p99_ns", 0) / 1e6,
        "seconds": took,
    }


def compare(
    name: str, port: int, budget_ms: float, batch: int, truth: float | None, args: argparse.Namespace, work: Path
) -> dict:
    closed, closed_s = searched(job(port, work, "ci-capacity", budget_ms, batch, max_concurrency=64))
    start_rate = max(1.0, round((closed["curve"][0]["throughput"] / batch) / 2))
    opened, open_s = searched(
        job(port, work, "ci-open-loop", budget_ms, batch, start_rate=start_rate, max_rate=4096.0,
            max_threads=128, window_requests=500)
    )  # fmt: skip
    rates = sorted(m["rate"] for m in opened["curve"])
    broke = [m["rate"] for m in opened["curve"] if m["p99_us"] > budget_ms * 1000 or m.get("late")]
    step = min(b - a for a, b in itertools.pairwise(rates)) if len(rates) > 1 else rates[0]
    top = min(broke) if broke else max(rates)
    grid_levels = int(top // step)
    binary = binary_search(port, budget_ms, batch, top, step, work)
    mlperf = loadgen(port, work, budget_ms, batch, start_rate, args.loadgen_s)
    return {
        "server": name,
        "budget_ms": budget_ms,
        "truth": truth,
        "closed": closed["capacity"],
        "closed_windows": closed["windows"],
        "closed_s": closed_s,
        "open": opened["capacity"],
        "open_valid": opened["valid"],
        "open_reason": opened["reason"],
        "open_levels": len(opened["curve"]),
        "open_windows": opened["windows"],
        "open_s": open_s,
        "grid_levels": grid_levels,
        "grid_windows_at_least": 3 * grid_levels,
        "step": step,
        "binary": binary,
        "loadgen": mlperf,
    }


def known_curve_row(args: argparse.Namespace, work: Path) -> dict:
    truth = open_loop_capacity(CURVE.workers, CURVE.base_ms / 1000, CURVE_BUDGET_MS / 1000, CURVE.distribution)
    port = free_port()
    server = launch(port, "dlrm", CURVE)
    try:
        wait_ready(port, "dlrm", 30)
        return compare("known curve (M/M/4, 20 ms)", port, CURVE_BUDGET_MS, 1, truth, args, work)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def standin_row(args: argparse.Namespace, work: Path) -> dict:
    with serving_a_fresh_export(work) as port:
        one, _ = searched(job(port, work, "ci-capacity", 100_000.0, 8, max_concurrency=1))
        budget = round(3 * one["curve"][0]["p99_us"] / 1000, 1)
        return compare("TF-Serving stand-in, DLRM b8", port, budget, 8, None, args, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loadgen-s", type=int, default=10, help="LoadGen's minimum duration a run, seconds")
    parser.add_argument("--only", choices=("known-curve", "standin"), help="one server only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "known-curve"):
            rows.append(known_curve_row(args, work))
        if args.only in (None, "standin"):
            rows.append(standin_row(args, work))
    print(
        "| server | budget (ms) | truth | closed loop | open loop (perf_analyzer) | vs truth | windows: open / grid"
        " | perf_analyzer --binary-search | LoadGen peak, verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        truth = f"{r['truth']:,.1f}" if r["truth"] else "n/a"
        versus = f"{r['open'] / r['truth'] - 1:+.1%}" if r["truth"] and r["open"] else "n/a"
        state = "" if r["open_valid"] else f" (invalid: {r['open_reason']})"
        b, lg = r["binary"], r["loadgen"]
        print(
            f"| {r['server']} | {r['budget_ms']:g} | {truth} | {r['closed'] or 0:,.1f} ({r['closed_windows']} w, "
            f"{r['closed_s']:.0f} s) | {r['open'] or 0:,.1f}{state} ({r['open_levels']} levels, {r['open_windows']} w, "
            f"{r['open_s']:.0f} s) | {versus} | {r['open_windows']} / >= {r['grid_windows_at_least']} "
            f"({r['open_windows'] / max(r['grid_windows_at_least'], 1):.0%}; {r['grid_levels']} levels of "
            f"{r['step']:g}/s) | {b['capacity']:,.1f} ({b['rows']} rows kept, {b['windows']} w, "
            f"{b['seconds']:.0f} s) | "
            f"{lg['peak']:,.1f}, {lg['verdict']}, p99 {lg['p99_ms']:.1f} ms ({lg['seconds']:.0f} s) |"
        )


if __name__ == "__main__":
    main()
