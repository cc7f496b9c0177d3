"""`python -m collect`: bring fleet results into the store, report on them, compare runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import facts
from collect.ingest import ingest
from collect.nightly import DEFAULT_PLAYBOOK
from collect.store import DEFAULT_DB, Store, StoreError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m collect", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("ingest", help="store the results under a results tree")
    cmd.add_argument(
        "results",
        type=Path,
        nargs="?",
        default=Path("results"),
        help="results tree: <run_id>/<host>/<model>/<config_id>/<instance>/ (default: results)",
    )
    cmd.add_argument("--db", type=Path, default=DEFAULT_DB, help="store file (default: %(default)s)")

    rep = sub.add_parser("report", help="write reports/<run_id>/ (summary.md, report.html, CSV, Parquet)")
    rep.add_argument("--run", help="run id (default: the newest in the store)")
    rep.add_argument("--db", type=Path, default=DEFAULT_DB)
    rep.add_argument("--out", type=Path, default=Path("reports"), help="reports root (default: %(default)s)")
    rep.add_argument("--baseline", type=Path, help="baseline file (default: the seed's Kunpeng 920 table)")

    pul = sub.add_parser("pull", help="fetch new result files from every host of an inventory (SFTP)")
    pul.add_argument("-i", "--inventory", type=Path, required=True, help="Ansible inventory of the fleet")
    pul.add_argument("--limit", default="all", help="group or host (default: all)")
    pul.add_argument("--remote-dir", default=facts.RESULTS_ROOT, help="results root on the hosts")
    pul.add_argument("--dest", type=Path, default=Path("results"), help="results root here (default: results)")
    pul.add_argument("--run", help="only this run id")
    pul.add_argument("--timeout", type=float, default=15.0, help="seconds per SSH operation")
    pul.add_argument("--retries", type=int, default=3, help="attempts per host")

    bst = sub.add_parser("best", help="the best throughput per model of a run, with the knobs behind it")
    bst.add_argument("--run", help="run id (default: the newest in the store)")
    bst.add_argument("--db", type=Path, default=DEFAULT_DB)

    exp = sub.add_parser("export", help="points (with their knobs) of a run, or of every run, as CSV or Parquet")
    exp.add_argument("output", type=Path, help="file to write; .csv or .parquet")
    exp.add_argument("--run", help="only this run id (default: every run)")
    exp.add_argument("--db", type=Path, default=DEFAULT_DB)

    nig = sub.add_parser("nightly", help="bench.yml on a limit, then pull, ingest, report and the regression check")
    nig.add_argument("-i", "--inventory", type=Path, default=Path("inventory"), help="default: %(default)s")
    nig.add_argument("--limit", default="kunpeng", help="group or host (default: %(default)s)")
    nig.add_argument("-e", "--extra-vars-file", type=Path, action="append", default=[], help="@file of variables")
    nig.add_argument("--run", default="", help="run id (default: the UTC time)")
    nig.add_argument("--playbook", type=Path, default=DEFAULT_PLAYBOOK, help="default: bench.yml")
    nig.add_argument("--results", type=Path, default=Path("results"), help="default: %(default)s")
    nig.add_argument("--db", type=Path, default=DEFAULT_DB)
    nig.add_argument("--reports", type=Path, default=Path("reports"), help="default: %(default)s")
    nig.add_argument("--logs", type=Path, default=Path("logs") / "nightly", help="default: %(default)s")
    nig.add_argument("--lock", type=Path, default=Path("results") / ".nightly.lock", help="default: %(default)s")

    cmp = sub.add_parser("compare", help="ratios of a run's best throughputs to a baseline or another run")
    cmp.add_argument("--run", help="run id (default: the newest in the store)")
    against = cmp.add_mutually_exclusive_group()
    against.add_argument("--baseline", type=Path, help="baseline file (default: the seed's Kunpeng 920 table)")
    against.add_argument("--against", metavar="RUN", help="another run id")
    cmp.add_argument("--db", type=Path, default=DEFAULT_DB)
    return top


def run_report(args: argparse.Namespace) -> int:
    from collect.history import describe_regressions
    from collect.report import build_report

    with Store(args.db) as store:
        report = build_report(store, args.run, args.out, args.baseline)
    print(f"report: {report.directory}/summary.md and report.html")
    for line in describe_regressions(report.regressions):
        print(f"REGRESSION {line}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from collect.inventory import targets
    from collect.pull import PullReport, pull

    hosts = targets(args.inventory, args.limit)
    print(f"pull: {len(hosts)} host(s) from {args.inventory}", file=sys.stderr)

    def progress(report: PullReport) -> None:
        state = f"FAILED after {report.attempts} attempt(s): {report.error}" if report.error else "ok"
        print(
            f"pull: {report.host}: {report.fetched} fetched, {report.already_here} already here, {state}",
            file=sys.stderr,
            flush=True,
        )

    reports = pull(hosts, args.remote_dir, args.dest, args.run, args.timeout, args.retries, progress)
    failed = [r.host for r in reports if r.error]
    print(
        f"pull: {sum(r.fetched for r in reports)} file(s) fetched into {args.dest}"
        + (f"; unreachable or refused: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def run_best(args: argparse.Namespace) -> int:
    from collect.aggregate import best_per_model
    from collect.frames import points_frame
    from collect.report import ReportError, failures, run_order

    with Store(args.db) as store:
        order = run_order(store)
        run = args.run or (order[-1] if order else None)
        if run is None or run not in order:
            raise ReportError(
                f"{args.db}: no results of run {run!r}" if run else f"{args.db}: the store holds no results"
            )
        points = points_frame(store)
        failed = failures(store, run)
    best = best_per_model(points[points["run_id"] == run])
    shown = best[["model", "throughput", "host", "concurrency_range", "batch_size", "intra", "inter", "p99_us"]]
    print(f"best throughput per model, run {run}:")
    print(shown.to_markdown(index=False, floatfmt=",.0f"))
    if not failed.empty:
        print(f"{len(failed)} point(s) did not complete:")
        print(failed.to_markdown(index=False))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from collect.frames import points_frame
    from collect.report import ReportError

    suffix = args.output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ReportError(f"{args.output}: the file name must end in .csv or .parquet")
    with Store(args.db) as store:
        points = points_frame(store)
    if args.run:
        if args.run not in set(points["run_id"]):
            raise ReportError(f"run {args.run!r} is not in {args.db}")
        points = points[points["run_id"] == args.run]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    staging = args.output.with_name(f".{args.output.name}.partial")
    if suffix == ".csv":
        points.to_csv(staging, index=False)
    else:
        points.to_parquet(staging, index=False)
    staging.replace(args.output)  # a reader never sees half a file
    print(f"export: {len(points)} point(s) into {args.output}")
    return 0


def run_nightly(args: argparse.Namespace) -> int:
    from collect.nightly import NightlyOptions, main_nightly

    options = NightlyOptions(
        inventory=args.inventory,
        limit=args.limit,
        results=args.results,
        db=args.db,
        reports=args.reports,
        logs=args.logs,
        lock=args.lock,
        run_id=args.run,
        playbook=args.playbook,
        extra_vars_files=args.extra_vars_file,
    )
    return main_nightly(options)


def run_compare(args: argparse.Namespace) -> int:
    from collect.aggregate import best_per_model
    from collect.baseline import compare_to_baseline, load_baseline
    from collect.frames import points_frame
    from collect.report import ReportError, run_order

    with Store(args.db) as store:
        order = run_order(store)
        points = points_frame(store)
    run = args.run or (order[-1] if order else None)
    for wanted in (run, args.against):
        if wanted is not None and wanted not in order:
            raise ReportError(f"run {wanted!r} is not in {args.db}")
    if run is None:
        raise ReportError(f"{args.db}: the store holds no results")
    best = best_per_model(points[points["run_id"] == run])
    if args.against:
        other = best_per_model(points[points["run_id"] == args.against])[["model", "throughput"]]
        baseline = other.rename(columns={"throughput": "baseline_throughput"})
    else:
        baseline = load_baseline(args.baseline) if args.baseline else load_baseline()
    table = compare_to_baseline(best, baseline)
    print(table.to_markdown(index=False, floatfmt=".4g"))
    return 0


def run_ingest(results: Path, db: Path) -> int:
    if not results.is_dir():
        print(f"collect: {results}: no such results directory", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        if done == total or done % 1000 == 0:
            print(f"ingest: {done}/{total} instance results read", file=sys.stderr, flush=True)

    with Store(db) as store:
        report = ingest(results, store, progress)
    for problem in report.problems:
        print(f"collect: skipped {problem}", file=sys.stderr)
    print(
        f"ingest: {report.added} new, {report.already_stored} already stored, {len(report.problems)} skipped, into {db}"
    )
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    from collect.baseline import BaselineError
    from collect.inventory import InventoryError
    from collect.nightly import NightlyError
    from collect.report import ReportError

    args = parser().parse_args(argv)
    try:
        if args.command == "ingest":
            return run_ingest(args.results, args.db)
        if args.command == "report":
            return run_report(args)
        if args.command == "pull":
            return run_pull(args)
        if args.command == "best":
            return run_best(args)
        if args.command == "export":
            return run_export(args)
        if args.command == "nightly":
            return run_nightly(args)
        return run_compare(args)
    except (StoreError, ReportError, BaselineError, InventoryError, NightlyError) as err:
        print(f"collect: {err}", file=sys.stderr)
        return 2
