"""`python -m collect`: bring fleet results into the store, report on them, compare runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from bench import facts
from collect import tables
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
    rep.add_argument("--thresholds", type=Path, help="change point thresholds (default: collect/thresholds.yml)")
    rep.add_argument("--budgets", type=Path, help="p99 budgets per model (default: collect/budgets.yml, 300 ms)")

    reg = sub.add_parser(
        "regressions",
        help="change points, outliers and drops of every series up to a run; exit 1 when one is an alarm",
    )
    reg.add_argument("--run", help="run id (default: the newest in the store)")
    reg.add_argument("--db", type=Path, default=DEFAULT_DB)
    reg.add_argument("--thresholds", type=Path, help="change point thresholds (default: collect/thresholds.yml)")
    reg.add_argument("--format", choices=["text", "json", "junit"], default="text", help="default: %(default)s")
    reg.add_argument("--output", type=Path, help="write here instead of standard output")

    twn = sub.add_parser(
        "twins", help="hosts grouped by fingerprint; those that stray from their twins, and the fields that differ"
    )
    twn.add_argument("--run", help="run id (default: the newest in the store)")
    twn.add_argument("--db", type=Path, default=DEFAULT_DB)
    twn.add_argument("--thresholds", type=Path, help="default: collect/thresholds.yml")
    twin_budget = twn.add_mutually_exclusive_group()
    twin_budget.add_argument("--p99-budget-ms", type=float, help="compare capacities under this budget")
    twin_budget.add_argument("--budgets", type=Path, help="compare capacities under these budgets")

    pul = sub.add_parser("pull", help="fetch new result files from every host of an inventory (SFTP)")
    pul.add_argument("-i", "--inventory", type=Path, required=True, help="Ansible inventory of the fleet")
    pul.add_argument("--limit", default="all", help="group or host (default: all)")
    pul.add_argument("--remote-dir", default=facts.RESULTS_ROOT, help="results root on the hosts")
    pul.add_argument("--dest", type=Path, default=Path("results"), help="results root here (default: results)")
    pul.add_argument("--run", help="only this run id")
    pul.add_argument("--timeout", type=float, default=15.0, help="seconds per SSH operation")
    pul.add_argument("--retries", type=int, default=3, help="attempts per host")

    bst = sub.add_parser(
        "best",
        help="the best throughput per model, mode and batch size of a run, with the knobs behind it; with a "
        "budget, each host's capacity: the highest throughput whose p99 is within it",
    )
    bst.add_argument("--run", help="run id (default: the newest in the store)")
    bst.add_argument("--db", type=Path, default=DEFAULT_DB)
    budget = bst.add_mutually_exclusive_group()
    budget.add_argument("--p99-budget-ms", type=float, help="one p99 budget for every model, in milliseconds")
    budget.add_argument("--budgets", type=Path, help="budgets per model (the shape of collect/budgets.yml)")

    exp = sub.add_parser(
        "export",
        help="points (with their knobs) as one CSV or Parquet file, or the store as a Parquet dataset "
        "partitioned by run (a directory: what `import` reads on another controller)",
    )
    exp.add_argument(
        "output", type=Path, help="x.csv or x.parquet: one file of points; a name without a suffix: a dataset"
    )
    exp.add_argument("--run", action="append", help="only this run id (repeatable; default: every run)")
    exp.add_argument("--db", type=Path, default=DEFAULT_DB)

    imp = sub.add_parser("import", help="add a Parquet dataset written by `export` (from any controller)")
    imp.add_argument("dataset", type=Path, help="directory holding instances/ and points/")
    imp.add_argument("--db", type=Path, default=DEFAULT_DB, help="store file (default: %(default)s)")

    mig = sub.add_parser("migrate", help="move a SQLite store of earlier recbench versions to DuckDB")
    mig.add_argument("--db", type=Path, default=DEFAULT_DB.with_suffix(".sqlite"), help="default: %(default)s")
    mig.add_argument("--to", type=Path, help="new store (default: the same name ending in .duckdb)")

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
    nig.add_argument(
        "--export", type=Path, help="also export the run to this shared dataset directory (one per fleet, many shards)"
    )
    nig.add_argument("--lock", type=Path, default=Path("results") / ".nightly.lock", help="default: %(default)s")

    cmp = sub.add_parser("compare", help="ratios of a run's best throughputs to a baseline or another run")
    cmp.add_argument("--run", help="run id (default: the newest in the store)")
    against = cmp.add_mutually_exclusive_group()
    against.add_argument("--baseline", type=Path, help="baseline file (default: the seed's Kunpeng 920 table)")
    against.add_argument("--against", metavar="RUN", help="another run id")
    cmp.add_argument("--db", type=Path, default=DEFAULT_DB)
    return top


def run_report(args: argparse.Namespace) -> int:
    from collect.changes import describe
    from collect.report import build_report

    with Store.existing(args.db) as store:
        report = build_report(store, args.run, args.out, args.baseline, args.thresholds, args.budgets)
    print(f"report: {report.directory}/summary.md and report.html")
    for line in describe(report.alarms):
        print(f"REGRESSION {line}")
    return 0


def run_regressions(args: argparse.Namespace) -> int:
    from collect import queries
    from collect.changes import alarms, describe, load_thresholds
    from collect.findings_format import as_json, as_junit
    from collect.report import chosen_run, findings_of

    limits = load_thresholds(args.thresholds) if args.thresholds else load_thresholds()
    with Store.existing(args.db) as store:
        order = queries.run_order(store)
        run = chosen_run(store, args.run, order)
        found = findings_of(store, run, limits)
    alarmed = alarms(found, order[: order.index(run) + 1], limits)
    if args.format == "json":
        text = as_json(run, found, alarmed)
    elif args.format == "junit":
        text = as_junit(run, found, alarmed)
    else:
        lines = [f"run {run}: {len(alarmed)} alarm(s), {len(found)} finding(s)"]
        lines += [f"ALARM {line}" for line in describe(alarmed)]
        lines += describe(_others(found, alarmed))
        text = "\n".join(lines) + "\n"
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"regressions: {len(alarmed)} alarm(s), {len(found)} finding(s) in {args.output}")
    else:
        sys.stdout.write(text)
    return 1 if len(alarmed) else 0


def _others(found: pd.DataFrame, alarmed: pd.DataFrame) -> pd.DataFrame:
    """FOUND without the rows that are in ALARMED."""
    keys = ["host", "model", "config_id", "kind", "run_id"]
    merged = found.merge(alarmed[keys], on=keys, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge")


def run_twins(args: argparse.Namespace) -> int:
    from collect import queries
    from collect.changes import load_thresholds
    from collect.report import chosen_run
    from collect.twins import twins

    limits = load_thresholds(args.thresholds) if args.thresholds else load_thresholds()
    with Store.existing(args.db) as store:
        run = chosen_run(store, args.run, queries.run_order(store))
        asked = _budgets_asked(args)
        values = _capacity_values(store, run, asked) if asked else None
        table = twins(store, run, limits, values)
    measure = "capacity under the budget" if values is not None else "best throughput"
    strays = table[table["verdict"] == "strays"] if not table.empty else table
    hosts = table["host"].nunique() if len(table) else 0
    print(f"twins, run {run} ({measure}): {len(strays)} stray(s) among {hosts} host(s)")
    if table.empty:
        return 0
    shown = table.sort_values(["verdict", "model", "host"], key=lambda c: c.ne("strays") if c.name == "verdict" else c)
    shown = shown.assign(
        value=shown["value"].map("{:,.0f}".format), ratio_to_twins=shown["ratio_to_twins"].map("{:.2f}".format)
    )
    columns = ["model", "mode", "batch_size", "host", "value", "ratio_to_twins", "twins", "group", "verdict", "why"]
    if shown["changed_during_run"].astype(bool).any():
        columns.append("changed_during_run")
    print(shown[columns].to_markdown(index=False, disable_numparse=True))
    return 0


def _budgets_asked(args: argparse.Namespace) -> tuple[dict[str, float], float] | None:
    """(budget per model, default budget) from --p99-budget-ms or --budgets; None when neither was given."""
    from collect.capacity import BudgetError, load_budgets

    if args.p99_budget_ms is not None:
        if args.p99_budget_ms <= 0:
            raise BudgetError(f"--p99-budget-ms must be positive, not {args.p99_budget_ms:g}")
        return {}, args.p99_budget_ms
    return load_budgets(args.budgets) if args.budgets else None


def _capacity_values(store: Store, run: str, asked: tuple[dict[str, float], float]) -> pd.DataFrame:
    """Each host's valid capacity per class, as twins compares it."""
    table = _capacity(store, run, asked)
    valid = table[table["valid"]]
    return valid[["host", "model", "mode", "batch_size"]].assign(value=valid["capacity"])


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
    from collect import queries
    from collect.aggregate import best_per_model
    from collect.report import chosen_run

    with Store.existing(args.db) as store:
        run = chosen_run(store, args.run, queries.run_order(store))
        asked = _budgets_asked(args)
        if asked:
            return _print_capacity(store, run, asked)
        best = best_per_model(store, run)
        failed = queries.failures(store, run)
        # the budgets do not matter here: a search answers for the budget it searched under
        searches = _capacity(store, run, ({}, 1.0), searched_only=True)
    if not best.empty or searches.empty:
        columns = ["model", "mode", "batch_size", "throughput", "host", "concurrency_range", "intra", "inter", "p99_us"]
        shown = best[columns]
        print(f"best throughput per model, mode and batch size, run {run}:")
        print(tables.markdown(shown))  # units in the headers, separators, fixed decimals
    if not searches.empty:
        _print_capacity_table(searches, f"capacity searches of run {run}, each under the p99 budget it searched:")
    if not failed.empty:
        print(f"{len(failed)} point(s) did not complete:")
        print(failed.to_markdown(index=False))
    return 0


def _capacity(
    store: Store, run: str, asked: tuple[dict[str, float], float], searched_only: bool = False
) -> pd.DataFrame:
    from collect.capacity import capacity_per_host, machine_capacity

    machines = machine_capacity(store, run, *asked)
    if searched_only:
        machines = machines[machines["found_by"] != "grid"]
    return capacity_per_host(machines)


def _print_capacity(store: Store, run: str, asked: tuple[dict[str, float], float]) -> int:
    table = _capacity(store, run, asked)
    _print_capacity_table(table, f"capacity under the p99 budget per model, mode, batch size and host, run {run}:")
    return 0


def _print_capacity_table(table: pd.DataFrame, title: str) -> None:
    from collect.tables import capacity_table

    print(title)
    print(capacity_table(table).to_markdown(index=False, disable_numparse=True))
    invalid = int((~table["valid"]).sum()) if not table.empty else 0
    if invalid:
        print(f"{invalid} capacity(ies) are invalid: the reason is shown instead of a number")


def run_export(args: argparse.Namespace) -> int:
    from collect import queries
    from collect.exchange import export_dataset, export_points
    from collect.report import ReportError

    with Store.existing(args.db) as store:
        known = set(queries.run_order(store))
        unknown = [run for run in args.run or [] if run not in known]
        if unknown:
            raise ReportError(f"run {unknown[0]!r} is not in {args.db}")
        if args.output.suffix and not args.output.is_dir():
            count = export_points(store, args.output, args.run)
            print(f"export: {count} point(s) into {args.output}")
        else:
            written = export_dataset(store, args.output, args.run)
            print(
                f"export: {written['instances']} instance(s) and {written['points']} point(s) "
                f"into the dataset {args.output} (partitioned by run)"
            )
    return 0


def run_import(args: argparse.Namespace) -> int:
    from collect.exchange import ExchangeError, import_dataset

    if not args.dataset.is_dir():
        raise ExchangeError(f"{args.dataset}: no such dataset directory")
    with Store(args.db) as store:
        added, already = import_dataset(store, args.dataset)
    print(f"import: {added} new, {already} already stored, into {args.db}")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from collect.legacy import is_sqlite, migrate

    if not is_sqlite(args.db):
        print(f"collect: {args.db}: not a SQLite store of an earlier recbench", file=sys.stderr)
        return 2
    instances, points = migrate(args.db, args.to or args.db.with_suffix(".duckdb"))
    print(f"migrate: {instances} instance(s) and {points} point(s) now in {args.to or args.db.with_suffix('.duckdb')}")
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
        export_dir=args.export,
    )
    return main_nightly(options)


def run_compare(args: argparse.Namespace) -> int:
    from collect import queries
    from collect.aggregate import best_per_model
    from collect.baseline import compare_to_baseline, load_baseline
    from collect.report import chosen_run

    with Store.existing(args.db) as store:
        order = queries.run_order(store)
        run = chosen_run(store, args.run, order)
        best = best_per_model(store, run)
        if args.against:
            other = best_per_model(store, chosen_run(store, args.against, order))
            renamed = {"throughput": "baseline_throughput", "mode": "baseline_mode"}
            renamed["batch_size"] = "baseline_batch_size"
            baseline = other[["model", "mode", "batch_size", "throughput"]].rename(columns=renamed)
    if not args.against:
        baseline = load_baseline(args.baseline) if args.baseline else load_baseline()
    table = compare_to_baseline(best, baseline)
    print(tables.markdown(table))
    return 0


def run_ingest(results: Path, db: Path) -> int:
    from collect.progress import progress

    if not results.is_dir():
        print(f"collect: {results}: no such results directory", file=sys.stderr)
        return 2
    with Store(db) as store, progress("ingest: instance results read") as update:
        report = ingest(results, store, update)
    for problem in report.problems:
        print(f"collect: skipped {problem}", file=sys.stderr)
    if not report.found:
        print(
            f"collect: {results}: no results in this tree "
            "(expected <run_id>/<host>/<model>/<config_id>/<instance>/metadata.json)",
            file=sys.stderr,
        )
        return 1
    print(
        f"ingest: {report.added} new, {report.already_stored} already stored, {len(report.problems)} skipped, into {db}"
    )
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    from collect.baseline import BaselineError
    from collect.capacity import BudgetError
    from collect.changes import ThresholdsError
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
        if args.command == "regressions":
            return run_regressions(args)
        if args.command == "twins":
            return run_twins(args)
        if args.command == "best":
            return run_best(args)
        if args.command == "export":
            return run_export(args)
        if args.command == "import":
            return run_import(args)
        if args.command == "migrate":
            return run_migrate(args)
        if args.command == "nightly":
            return run_nightly(args)
        return run_compare(args)
    except (StoreError, ReportError, BaselineError, InventoryError, NightlyError, ThresholdsError, BudgetError) as err:
        print(f"collect: {err}", file=sys.stderr)
        return 2
