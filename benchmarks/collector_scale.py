"""Benchmark: the collector at fleet scale. Prints figures; asserts nothing.

1. Side by side in one run, at a size both hold (default 20 hosts x 28 nights, 560,000 points): the
   SQLite + pandas collector as it was at LEGACY_COMMIT (its code read from git) and the DuckDB one
   of this checkout. Each step runs in its own process so its peak memory is its own: ingest of the
   history tree, the nightly increment (one night of 100 hosts: 10,000 instance results, 100,000
   points), `report`, `best`, `compare` and the regression check.
2. The DuckDB collector alone at full size: a year of 100 hosts x 5 models x 20 configs x 10 levels
   (36.5 M points) generated straight into the store by SQL, measured after 1, 3 and 12 months.

Run inside .venv from a git checkout: python benchmarks/collector_scale.py [--months 1,3,12]
(about 20 minutes and 3 GB of disk with the defaults; --months 1 for a quick look).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import facts  # noqa: E402
from sim.results import simulated_metadata  # noqa: E402

LEGACY_COMMIT = "b4bb950"  # the last SQLite collector
MODELS = facts.MODELS
CONFIGS, LEVELS = 20, 10
HEADER = (
    "Concurrency,Inferences/Second,Client Send,Client Recv,p50 latency,p90 latency,p95 latency,"
    "p99 latency,Avg latency,request/response,response wait\n"
)
STEPS = ["ingest", "increment", "report", "best", "compare", "regressions"]


# ---------------------------------------------------------------- result trees (files, as pulled)
def generate_tree(root: Path, runs: list[str], hosts: int, seed: int = 1) -> int:
    """Instance directories as the sweep runner writes them; returns how many."""
    rng = random.Random(seed)
    count = 0
    for run in runs:
        for h in range(hosts):
            host = f"kp-{h:03d}"
            for model in MODELS:
                for c in range(CONFIGS):
                    config = f"{model}-entire-b256-{c:03d}"
                    directory = root / run / host / model / config / "numa0"
                    directory.mkdir(parents=True)
                    base = 1000.0 * (1 + MODELS.index(model)) * (1 + c / CONFIGS)
                    rows = []
                    for level in range(1, LEVELS + 1):
                        tput = base * (1 - 0.5**level) * rng.uniform(0.97, 1.03)
                        lat = 1000.0 * level * rng.uniform(0.9, 1.1)
                        rows.append(
                            f"{level},{tput:.2f},30,0,{lat:.0f},{lat * 1.3:.0f},{lat * 1.4:.0f},"
                            f"{lat * 1.6:.0f},{lat * 1.1:.0f},30,{lat:.0f}\n"
                        )
                    rng.shuffle(rows)  # perf_analyzer sorts by throughput, not concurrency
                    (directory / "perf.csv").write_text(HEADER + "".join(rows))
                    levels = list(range(1, LEVELS + 1))
                    meta = simulated_metadata(run, host, model, config, "numa0", levels, [], f"1:{LEVELS}:1", 256)
                    (directory / "metadata.json").write_text(json.dumps(meta))
                    count += 1
    return count


# ---------------------------------------------------------------- the SQLite collector, from git
def legacy_package(workdir: Path) -> Path:
    """LEGACY_COMMIT's collect/ as the package collect_legacy under WORKDIR."""
    target = workdir / "legacy"
    if not (target / "collect_legacy").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", LEGACY_COMMIT, "collect"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        (target / "collect").rename(target / "collect_legacy")
        for module in (target / "collect_legacy").glob("*.py"):
            text = (
                module.read_text()
                .replace("from collect.", "from collect_legacy.")
                .replace("from collect import", "from collect_legacy import")
            )
            module.write_text(text)
    return target


# ---------------------------------------------------------------- one step, in its own process
def step(kind: str, name: str, db: Path, tree: Path, out: Path) -> None:
    """Run one step of one collector here; print {"seconds": .., "peak_mib": ..} as the last line."""
    package = "collect_legacy" if kind == "sqlite" else "collect"
    mod = __import__(f"{package}.cli", fromlist=["main"])
    store_mod = __import__(f"{package}.store", fromlist=["Store"])
    ingest_mod = __import__(f"{package}.ingest", fromlist=["ingest"])
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if name in ("ingest", "increment"):
            with store_mod.Store(db) as store:
                report = ingest_mod.ingest(tree, store)
            assert not report.problems and report.added, report
        elif name == "report":
            assert mod.main(["report", "--db", str(db), "--out", str(out)]) == 0
        elif name in ("best", "compare"):
            assert mod.main([name, "--db", str(db)]) == 0
        elif kind == "sqlite":
            from collect_legacy.frames import points_frame
            from collect_legacy.history import regressions
            from collect_legacy.report import run_order

            with store_mod.Store(db) as store:
                regressions(points_frame(store), run_order(store))
        else:  # change points over every series' whole history, and the newest run's drops
            assert mod.main(["regressions", "--db", str(db), "--output", str(out / "regressions.txt")]) in (0, 1)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib()}))


def peak_mib() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over exec
    from the parent, whose DuckDB buffers would then count as the step's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, name: str, db: Path, tree: Path, out: Path, legacy: Path) -> dict:
    env_path = f"{legacy}:{REPO}"
    proc = subprocess.run(
        [sys.executable, __file__, "--step", kind, name, str(db), str(tree), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": env_path},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- a year, straight into the store
METADATA_TEMPLATE = json.dumps(
    simulated_metadata("@RUN@", "@HOST@", "@MODEL@", "@CONFIG@", "numa0", list(range(1, 11)), [], "1:10:1", 256),
    sort_keys=True,
)


def generate_store(db: Path, first_night: int, last_night: int, hosts: int) -> None:
    """Nights [FIRST_NIGHT, LAST_NIGHT) of HOSTS hosts into the store, night-ordered, by SQL."""
    from collect.store import INSTANCE_COLUMNS, V1_COLUMNS, Store

    models = ", ".join(f"('{m}', {i})" for i, m in enumerate(MODELS))
    with Store(db) as store:
        for start in range(first_night, last_night, 10):
            end = min(start + 10, last_night)
            grid = (
                f"FROM range({start}, {end}) n(n), range({hosts}) h(h), (VALUES {models}) m(model, mi), "
                f"range({CONFIGS}) c(c)"
            )
            names = (
                "printf('night-%04d', n) AS run_id, printf('kp-%03d', h) AS host, model, "
                "printf('%s-entire-b256-%03d', model, c) AS config_id, 'numa0' AS instance"
            )
            with store.transaction():
                store.execute(
                    f"""INSERT INTO instances ({", ".join(c for c in V1_COLUMNS["instances"] if c in INSTANCE_COLUMNS)})
                        SELECT {names}, 'complete', 'entire', 256, '1:10:1', 0, 0, 0, 0, '[]',
                        replace(replace(replace(replace(?, '@RUN@', printf('night-%04d', n)),
                            '@HOST@', printf('kp-%03d', h)), '@MODEL@', model),
                            '@CONFIG@', printf('%s-entire-b256-%03d', model, c)),
                        'generated', md5(printf('%d %d %d %d', n, h, mi, c)),
                        strftime(TIMESTAMP '2026-01-01' + to_days(n::INTEGER), '%Y-%m-%dT%H:%M:%S+00:00')
                        {grid} ORDER BY n, h, mi, c""",
                    [METADATA_TEMPLATE],
                )
                # A host's speed, a config's, a level's, and 3 % of noise; host 7 slows by 15 % from night 200.
                store.execute(
                    f"""INSERT INTO points ({", ".join(V1_COLUMNS["points"])}) SELECT {names}, level,
                        1000.0 * (1 + mi) * (1 + c / {CONFIGS}) * (1 + (h % 10) / 50.0) * (1 - 0.5 ** level)
                            * (1 + ((hash(n, h, mi, c, level) % 600)::INTEGER - 300) / 10000.0)
                            * CASE WHEN h = 7 AND n >= 200 THEN 0.85 ELSE 1 END AS throughput,
                        1000.0 * level AS p50, 1300.0 * level, 1400.0 * level, 1600.0 * level, 1100.0 * level,
                        30, 0
                        {grid}, range(1, {LEVELS + 1}) l(level) ORDER BY n, h, mi, c, level"""
                )
                store.fill_best([f"night-{n:04d}" for n in range(start, end)])


# ---------------------------------------------------------------- printing
def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}")
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def side_by_side(work: Path, hosts: int, nights: int, legacy: Path) -> None:
    history, increment = work / "history", work / "increment"
    start = time.perf_counter()
    runs = [f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}" for n in range(nights)]
    files = generate_tree(history, runs, hosts) + generate_tree(increment, ["2026-12-01"], 100, seed=2)
    print(f"generated {files:,} instance result directories in {time.perf_counter() - start:.0f} s")
    results: dict[str, dict[str, dict]] = {}
    for kind in ("sqlite", "duckdb"):
        db = work / ("old-store.sqlite" if kind == "sqlite" else "new-store.duckdb")
        results[kind] = {}
        for name in STEPS:
            tree = increment if name == "increment" else history
            results[kind][name] = measure(kind, name, db, tree, work / f"reports-{kind}", legacy)
            print(f"  {kind:6} {name:11} {results[kind][name]['seconds']:7.1f} s", flush=True)
    points = hosts * nights * len(MODELS) * CONFIGS * LEVELS
    rows = []
    for name in STEPS:
        old, new = results["sqlite"][name], results["duckdb"][name]
        rows.append(
            [
                name,
                f"{old['seconds']:.1f} s",
                f"{new['seconds']:.1f} s",
                f"{old['seconds'] / new['seconds']:.1f}x",
                f"{old['peak_mib']:.0f} MiB",
                f"{new['peak_mib']:.0f} MiB",
            ]
        )
    table(
        f"side by side: {hosts} hosts x {nights} nights ({points:,} points), then one night of 100 hosts (100,000)",
        ["step", "SQLite+pandas", "DuckDB", "speed-up", "peak old", "peak new"],
        rows,
    )
    for kind in ("sqlite", "duckdb"):
        rate = 100 * len(MODELS) * CONFIGS * LEVELS / results[kind]["increment"]["seconds"]
        print(f"nightly increment, {kind}: {rate:,.0f} points/s (validated: every file parsed and checked)")


def full_size(work: Path, months: list[int], legacy: Path) -> None:
    db = work / "year.duckdb"
    rows = []
    done = 0
    for month in months:
        nights = round(month * 365 / 12)
        start = time.perf_counter()
        generate_store(db, done, nights, 100)
        done = nights
        generated = time.perf_counter() - start
        points = nights * 100 * len(MODELS) * CONFIGS * LEVELS
        row = [f"{month} month(s)", f"{points / 1e6:.1f} M", f"{db.stat().st_size / 2**30:.2f} GiB"]
        for name in ("report", "best", "compare", "regressions"):
            figures = measure("duckdb", name, db, work, work / "reports-year", legacy)
            row.append(f"{figures['seconds']:.1f} s / {figures['peak_mib']:.0f} MiB")
            figure = f"{figures['seconds']:6.1f} s {figures['peak_mib']:6.0f} MiB"
            print(f"  {month:2} month(s) {name:11} {figure}", flush=True)
        print(f"  ({generated:.0f} s to generate)", flush=True)
        rows.append(row)
    table(
        "DuckDB alone, 100 hosts x 5 models x 20 configs x 10 levels a night (time / peak memory of the process)",
        ["history", "points", "store", "report", "best", "compare", "regressions"],
        rows,
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--step":
        step(sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]), Path(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=20, help="side by side: hosts (default: %(default)s)")
    parser.add_argument("--nights", type=int, default=28, help="side by side: nights (default: %(default)s)")
    parser.add_argument("--months", default="1,3,12", help="full size: months measured (default: %(default)s)")
    parser.add_argument("--skip-side", action="store_true", help="only the full-size part")
    parser.add_argument("--workdir", type=Path, help="keep the generated data here (default: a temporary dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        legacy = legacy_package(work)
        if not args.skip_side:
            side_by_side(work, args.hosts, args.nights, legacy)
        full_size(work, [int(m) for m in args.months.split(",")], legacy)


if __name__ == "__main__":
    main()
