"""Benchmark: the capacity search against the grid it replaces, and the knob search against the full
knob product, side by side in one run, with the real perf_analyzer and the real host-side runner
(bench.sweep). Prints figures; asserts nothing about speed.

1. Capacity, per server: the grid (every level from 1 to the search's max_concurrency, today's runner,
   its best level within the budget) and the search under the same budget, on
   - the known-curve server (sim.known_curve: 16 workers, 9 ms + 2 ms per other request in service),
   - the TF-Serving stand-in serving a model zoo export of DLRM (budget: 3x the p99 of one client).
   Capacity found as a share of the grid's best, windows and wall seconds as shares of the grid's.
2. Knobs: on known-curve servers whose curve follows the knobs (batch: a batching cost per item;
   intra: workers; inter: contention; xla: a shorter base time), a capacity search for every config of
   the product, and the coordinate knob search (bench.knobsearch) over the same space, reading the
   product's measurements: best capacity found as a share of the product's best, and configs
   measured as a share of the product (its wall time: the product's, pro rata).

Run inside .venv: python benchmarks/capacity_search.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.knobsearch import plan  # noqa: E402
from bench.layout import read_rows  # noqa: E402
from bench.sweep import run_job  # noqa: E402
from sim.known_curve.server import Curve, launch  # noqa: E402
from sim.ports import free_port  # noqa: E402
from sim.tfserving_standin.process import serving_a_fresh_export, wait_ready  # noqa: E402

VENV = Path(sys.executable).parent.parent
PERF_ANALYZER = str(VENV / "bin" / "perf_analyzer")


def perf_analyzer_wrapper(directory: Path) -> str:
    """perf_analyzer with -v, so the grid's windows can be counted as the search's are."""
    wrapper = directory / "perf_analyzer_v"
    wrapper.write_text(f'#!/bin/sh\nexec "{PERF_ANALYZER}" "$@" -v\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def config(batch: int, window_ms: int, **extra: object) -> dict:
    return {
        "config_id": "bench",
        "model": "dlrm",
        "mode": "single",
        "batch_size": batch,
        "measurement_interval_ms": window_ms,
        "stability_percentage": 10,
        "max_trials": 10,
        "latency_threshold_ms": 100_000,  # the grid measures every level; the budget is applied afterwards
        "percentile": 99,
        "request_distribution": "constant",
        "input_data": "random",
        **extra,
    }


def measure(port: int, cfg: dict, work: Path, perf_analyzer: str) -> tuple[dict, float, Path]:
    """metadata.json of one instance measured by the runner, its wall seconds, its directory."""
    results = work / f"r{time.monotonic_ns()}"
    job = {
        "run_id": "bench",
        "host": "here",
        "model": "dlrm",
        "config": cfg,
        "results_dir": str(results),
        "instances": [{"name": "numa0", "port": port}],
        "perf_analyzer": perf_analyzer,
        "timeout_s": 300,
        "retries": 1,
    }
    began = time.monotonic()
    run_job(job)
    seconds = time.monotonic() - began
    return json.loads((results / "numa0" / "metadata.json").read_text()), seconds, results / "numa0"


def rows_of(out: Path) -> list[dict[str, str]]:
    csv_path = out / "perf.csv"
    return read_rows(csv_path.read_text())[1] if csv_path.is_file() else []


def grid_best(out: Path, budget_ms: float) -> tuple[float, int, int]:
    """(best throughput within the budget, levels measured, windows) of a grid result."""
    rows = rows_of(out)
    fits = [float(r["Inferences/Second"]) for r in rows if float(r["p99 latency"]) <= budget_ms * 1000]
    logs = sorted(out.glob("attempt-*.log"))
    windows = sum(log.read_text().count("Pass [") for log in logs)
    return (max(fits) if fits else 0.0), len(rows), windows


def compare(name: str, port: int, budget_ms: float, batch: int, window_ms: int, top: int, work: Path) -> dict:
    pa = perf_analyzer_wrapper(work)
    grid_cfg = config(batch, window_ms, concurrency_range=f"1:{top}:1")
    _, grid_s, grid_dir = measure(port, grid_cfg, work, pa)
    best, grid_levels, grid_windows = grid_best(grid_dir, budget_ms)
    search_cfg = config(
        batch,
        window_ms,
        concurrency_range=f"1:{top}",
        search="capacity",
        p99_budget_ms=budget_ms,
        min_gain_percent=5.0,
        max_concurrency=top,
    )
    meta, search_s, _ = measure(port, search_cfg, work, PERF_ANALYZER)
    found = meta["search"]
    return {
        "server": name,
        "budget_ms": budget_ms,
        "grid_best": best,
        "grid_levels": grid_levels,
        "grid_windows": grid_windows,
        "grid_s": grid_s,
        "capacity": found["capacity"] or 0.0,
        "valid": found["valid"],
        "levels": len(found["curve"]),
        "windows": found["windows"],
        "search_s": search_s,
    }


def known_curve_row(work: Path, window_ms: int, top: int) -> dict:
    port = free_port()
    server = launch(port, "dlrm", Curve(workers=16, base_ms=9, contention_ms=2))
    try:
        wait_ready(port, "dlrm", 30)
        return compare("known curve (16 workers)", port, 33.0, 1, window_ms, top, work)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def standin_row(work: Path, window_ms: int, top: int) -> dict:
    with serving_a_fresh_export(work) as port:
        _, _, out = measure(port, config(8, window_ms, concurrency_range="1:1:1"), work, PERF_ANALYZER)
        budget = round(3 * float(rows_of(out)[0]["p99 latency"]) / 1000, 1)
        return compare("TF-Serving stand-in, DLRM b8", port, budget, 8, window_ms, top, work)


# The knob space of part 2 and how each knob shapes a known-curve server.
KNOBS = {"batch_size": [1, 4, 16], "intra": [4, 8, 16], "inter": [0, 1, 2], "xla": [False, True]}


def curve_of(knobs: dict) -> Curve:
    return Curve(
        workers=knobs["intra"],
        base_ms=9.0 * (0.85 if knobs["xla"] else 1.0),
        contention_ms={0: 2.0, 1: 1.5, 2: 1.8}[knobs["inter"]],
        item_ms=1.0,
    )


def knob_capacity(knobs: dict, budget_ms: float, window_ms: int, work: Path) -> float | None:
    port = free_port()
    server = launch(port, "dlrm", curve_of(knobs))
    try:
        wait_ready(port, "dlrm", 30)
        cfg = config(
            knobs["batch_size"],
            window_ms,
            concurrency_range="1:16",
            search="capacity",
            p99_budget_ms=budget_ms,
            min_gain_percent=5.0,
            max_concurrency=16,
        )
        meta, _, _ = measure(port, cfg, work, PERF_ANALYZER)
        return meta["search"]["capacity"] if meta["search"]["valid"] else None
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def knob_rows(work: Path, window_ms: int) -> dict:
    budget = 40.0
    space = [
        {"config_id": f"k{i}", "onednn": False, **dict(zip(KNOBS, values, strict=True))}
        for i, values in enumerate(itertools.product(*KNOBS.values()))
    ]
    began = time.monotonic()
    product = {c["config_id"]: knob_capacity(c, budget, window_ms, work) for c in space}
    product_s = time.monotonic() - began
    # The search's configs are looked up in the product's measurements: the same measurement either
    # way, so the figures compare which configs each measures, not two samples of the noise.
    searched: dict[str, float | None] = {}
    while True:
        chosen, why = plan(space, searched, budget=len(space))
        if chosen is None:
            break
        searched[chosen["config_id"]] = product[chosen["config_id"]]
    search_s = product_s * len(searched) / len(space)
    best_product = max(v for v in product.values() if v is not None)
    best_found = max(v for v in searched.values() if v is not None)
    return {
        "space": len(space),
        "product_best": best_product,
        "product_s": product_s,
        "measured": len(searched),
        "found": best_found,
        "search_s": search_s,
        "stopped": why,
        "best_config": max(product, key=lambda k: product[k] or 0),
        "found_config": max(searched, key=lambda k: searched[k] or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="half-second windows, a smaller grid, no knob part")
    parser.add_argument("--window-ms", type=int, default=1000)
    args = parser.parse_args()
    libs = sorted(VENV.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"))
    os.environ["LD_LIBRARY_PATH"] = f"{libs[0]}:{os.environ.get('LD_LIBRARY_PATH', '')}" if libs else ""
    window = 500 if args.quick else args.window_ms
    top = 16 if args.quick else 32
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [known_curve_row(work, window, top)]
        print(f"measured: {rows[-1]}", flush=True)
        rows.append(standin_row(work, window, 16))
        print(f"measured: {rows[-1]}", flush=True)
        knobs = None if args.quick else knob_rows(work, args.window_ms)
    print()
    print(f"capacity search vs the grid 1..max step 1 ({window} ms windows, p99 stabilised):")
    print("| server | budget (ms) | grid best (infer/s) | search (infer/s) | share | levels | windows | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        share = r["capacity"] / r["grid_best"] if r["grid_best"] else float("nan")
        print(
            f"| {r['server']} | {r['budget_ms']:g} | {r['grid_best']:,.0f} | {r['capacity']:,.0f}"
            f"{'' if r['valid'] else ' (invalid)'} | {share:.1%} | {r['levels']} of {r['grid_levels']}"
            f" | {r['windows']} of {r['grid_windows']} ({r['windows'] / max(r['grid_windows'], 1):.0%})"
            f" | {r['search_s']:.0f} of {r['grid_s']:.0f} s ({r['search_s'] / r['grid_s']:.0%}) |"
        )
    if knobs:
        print()
        print(f"knob search vs the full product ({knobs['space']} configs, each a capacity search, 40 ms budget):")
        print("| product best (infer/s) | knob search best | share | configs measured | wall | stopped |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {knobs['product_best']:,.0f} ({knobs['best_config']}) | {knobs['found']:,.0f} ({knobs['found_config']})"
            f" | {knobs['found'] / knobs['product_best']:.1%} | {knobs['measured']} of {knobs['space']}"
            f" ({knobs['measured'] / knobs['space']:.0%}) | ~{knobs['search_s']:.0f} of {knobs['product_s']:.0f} s"
            f" | {knobs['stopped']} |"
        )


if __name__ == "__main__":
    main()
