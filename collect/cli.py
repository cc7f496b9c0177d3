"""`python -m collect`: bring fleet results into the store, report on them, compare runs."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import pandas as pd

from bench import facts
from collect import names, tables
from collect.checks import positive_integer_argument, positive_number_argument
from collect.errors import (
    EXIT_ALARM,
    EXIT_HOSTS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SKIPPED,
    CollectError,
    FilesystemError,
    InputError,
    clip,
    exit_codes_text,
    filesystem_error,
)
from collect.ingest import ingest
from collect.nightly import DEFAULT_PLAYBOOK
from collect.store import DEFAULT_DB, Store

DEBUG_ENV = "RECBENCH_DEBUG"  # set to 1: an internal error shows its traceback
EPILOG = exit_codes_text() + f"\n\n{DEBUG_ENV}=1 shows the traceback of an internal error."


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on standard error (and its exit code, 2)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("python -m collect").strip()
        self.exit(2, f"collect: {command + ': ' if command else ''}{clip(message)} (see --help)\n")


def _parents() -> dict[str, argparse.ArgumentParser]:
    """The options several commands share, each declared once."""
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, default=DEFAULT_DB, help="store file (default: %(default)s)")
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--run", type=names.run_id_argument, help="run id (default: the newest in the store)")
    thresholds = argparse.ArgumentParser(add_help=False)
    thresholds.add_argument("--thresholds", type=Path, help="change point thresholds (default: collect/thresholds.yml)")
    budgets_file = argparse.ArgumentParser(add_help=False)
    budgets_file.add_argument(
        "--budgets", type=Path, help="p99 budgets per model (default: collect/budgets.yml, 300 ms)"
    )
    budget = argparse.ArgumentParser(add_help=False)
    one_of = budget.add_mutually_exclusive_group()
    one_of.add_argument(
        "--p99-budget-ms", type=positive_number_argument, help="one p99 budget for every model, in milliseconds"
    )
    one_of.add_argument("--budgets", type=Path, help="budgets per model (the shape of collect/budgets.yml)")
    baseline = argparse.ArgumentParser(add_help=False)
    baseline.add_argument("--baseline", type=Path, help="baseline file (default: the seed's Kunpeng 920 table)")
    inventory = argparse.ArgumentParser(add_help=False)
    inventory.add_argument("--limit", default="all", help="group or host (default: %(default)s)")
    return {
        "db": db,
        "run": run,
        "thresholds": thresholds,
        "budgets_file": budgets_file,
        "budget": budget,
        "baseline": baseline,
        "limit": inventory,
    }


def parser() -> argparse.ArgumentParser:
    top = Parser(
        prog="python -m collect",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    shared = _parents()

    def command(name: str, help: str, *parents: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            parents=[shared[p] for p in parents],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    cmd = command("ingest", "store the results under a results tree", "db")
    cmd.add_argument(
        "results",
        type=Path,
        nargs="?",
        default=Path("results"),
        help="results tree: <run_id>/<host>/<model>/<config_id>/<instance>/ (default: results)",
    )
    cmd.set_defaults(func=run_ingest)

    rep = command(
        "report",
        "write reports/<run_id>/ (summary.md, report.html, CSV, Parquet)",
        "run", "db", "baseline", "thresholds", "budgets_file",
    )  # fmt: skip
    rep.add_argument("--out", type=Path, default=Path("reports"), help="reports root (default: %(default)s)")
    rep.set_defaults(func=run_report)

    reg = command(
        "regressions",
        "change points, outliers and drops of every series up to a run; exit 1 when one is an alarm",
        "run", "db", "thresholds",
    )  # fmt: skip
    reg.add_argument("--format", choices=["text", "json", "junit"], default="text", help="default: %(default)s")
    reg.add_argument("--output", type=Path, help="write here instead of standard output")
    reg.set_defaults(func=run_regressions)

    twn = command(
        "twins",
        "hosts grouped by fingerprint; those that stray from their twins, and the fields that differ",
        "run", "db", "thresholds", "budget",
    )  # fmt: skip
    twn.set_defaults(func=run_twins)

    pul = command("pull", "fetch new result files from every host of an inventory (SFTP)", "limit")
    pul.add_argument("-i", "--inventory", type=Path, required=True, help="Ansible inventory of the fleet")
    pul.add_argument("--remote-dir", default=facts.RESULTS_ROOT, help="results root on the hosts")
    pul.add_argument("--dest", type=Path, default=Path("results"), help="results root here (default: results)")
    pul.add_argument("--run", type=names.run_id_argument, help="only this run id")
    pul.add_argument("--timeout", type=positive_number_argument, default=15.0, help="seconds per SSH operation")
    pul.add_argument("--retries", type=positive_integer_argument, default=3, help="attempts per host")
    pul.set_defaults(func=run_pull)

    bst = command(
        "best",
        "the best throughput per model, mode and batch size of a run, with the knobs behind it; with a "
        "budget, each host's capacity: the highest throughput whose p99 is within it",
        "run", "db", "budget",
    )  # fmt: skip
    bst.set_defaults(func=run_best)

    eff = command(
        "efficiency",
        "architectures compared like with like: per model, mode, batch, load, client and budget, the best "
        "capacity per core the server used and per watt of each architecture, and its ratio to x86_64's",
        "run", "db", "budget",
    )  # fmt: skip
    eff.set_defaults(func=run_efficiency)

    exp = command(
        "export",
        "points (with their knobs) as one CSV or Parquet file, or the store as a Parquet dataset "
        "partitioned by run (a directory: what `import` reads on another controller)",
        "db",
    )
    exp.add_argument(
        "output", type=Path, help="x.csv or x.parquet: one file of points; a name without a suffix: a dataset"
    )
    exp.add_argument(
        "--run",
        type=names.run_id_argument,
        action="append",
        help="only this run id (repeatable; default: every run)",
    )
    exp.set_defaults(func=run_export)

    imp = command("import", "add a Parquet dataset written by `export` (from any controller)", "db")
    imp.add_argument("dataset", type=Path, help="directory holding instances/ and points/")
    imp.set_defaults(func=run_import)

    mig = command("migrate", "move a SQLite store of earlier recbench versions to DuckDB")
    mig.add_argument("--db", type=Path, default=DEFAULT_DB.with_suffix(".sqlite"), help="default: %(default)s")
    mig.add_argument("--to", type=Path, help="new store (default: the same name ending in .duckdb)")
    mig.set_defaults(func=run_migrate)

    nig = command("nightly", "bench.yml on a limit, then pull, ingest, report and the regression check", "db")
    nig.add_argument("-i", "--inventory", type=Path, default=Path("inventory"), help="default: %(default)s")
    nig.add_argument("--limit", default="kunpeng", help="group or host (default: %(default)s)")
    nig.add_argument("-e", "--extra-vars-file", type=Path, action="append", default=[], help="@file of variables")
    nig.add_argument("--run", type=names.run_id_argument, default=None, help="run id (default: the UTC time)")
    nig.add_argument("--playbook", type=Path, default=DEFAULT_PLAYBOOK, help="default: bench.yml")
    nig.add_argument("--results", type=Path, default=Path("results"), help="default: %(default)s")
    nig.add_argument("--reports", type=Path, default=Path("reports"), help="default: %(default)s")
    nig.add_argument("--logs", type=Path, default=Path("logs") / "nightly", help="default: %(default)s")
    nig.add_argument(
        "--export", type=Path, help="also export the run to this shared dataset directory (one per fleet, many shards)"
    )
    nig.add_argument("--lock", type=Path, default=Path("results") / ".nightly.lock", help="default: %(default)s")
    nig.set_defaults(func=run_nightly)

    cmp = command("compare", "ratios of a run's best throughputs to a baseline or another run", "run", "db")
    against = cmp.add_mutually_exclusive_group()
    against.add_argument("--baseline", type=Path, help="baseline file (default: the seed's Kunpeng 920 table)")
    against.add_argument("--against", metavar="RUN", type=names.run_id_argument, help="another run id")
    cmp.set_defaults(func=run_compare)
    return top


def reading(path: Path) -> Store:
    """The store at PATH for a command that only reads: migrated first if it is of an earlier
    version, then opened read-only (never created)."""
    from collect.legacy import migrate_if_legacy

    return Store.existing(migrate_if_legacy(path))


def writing(path: Path) -> Store:
    """The store at PATH for a command that writes: migrated first if it is of an earlier version,
    created if missing."""
    from collect.legacy import migrate_if_legacy

    return Store(migrate_if_legacy(path))


def _directory_for_output(path: Path, what: str) -> None:
    """PATH may become a directory: refuse at once, before any work, if a file is in its way."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise FilesystemError(f"{part}: not a directory ({what})")
            return


def run_report(args: argparse.Namespace) -> int:
    from collect.changes import describe
    from collect.report import build_report

    _directory_for_output(args.out, "--out names the reports root")
    with reading(args.db) as store:
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
    with reading(args.db) as store:
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
        _directory_for_output(args.output.parent, "--output names a file in it")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"regressions: {len(alarmed)} alarm(s), {len(found)} finding(s) in {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_ALARM if len(alarmed) else EXIT_OK


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
    with reading(args.db) as store:
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
    from collect.capacity import load_budgets

    if args.p99_budget_ms is not None:  # a finite number above 0: checked as it was parsed
        return {}, args.p99_budget_ms
    return load_budgets(args.budgets) if args.budgets else None


def _capacity_values(store: Store, run: str, asked: tuple[dict[str, float], float]) -> pd.DataFrame:
    """Each host's valid capacity per class, as twins compares it, with what the host did at it."""
    from collect.twins import EVIDENCE

    table = _capacity(store, run, asked)
    if table.empty:
        return pd.DataFrame(columns=["host", "model", "mode", "batch_size", "value", *EVIDENCE])
    valid = table[table["valid"]]
    return valid[["host", "model", "mode", "batch_size", *EVIDENCE]].assign(value=valid["capacity"])


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
    return EXIT_HOSTS if failed else EXIT_OK


def run_best(args: argparse.Namespace) -> int:
    from collect import queries
    from collect.aggregate import best_per_model
    from collect.report import chosen_run

    with reading(args.db) as store:
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
        columns += ["cores_used", "per_core_used", "watts", "inferences_per_joule", "limited_by", "throttled"]
        shown = tables.with_evidence_shown(best[columns])
        print(f"best throughput per model, mode and batch size, run {run}:")
        print(tables.markdown(shown))  # units in the headers, separators, fixed decimals
    if not searches.empty:
        _print_capacity_table(searches, f"capacity searches of run {run}, each under the p99 budget it searched:")
    if not failed.empty:
        print(f"{len(failed)} point(s) did not complete:")
        print(failed.to_markdown(index=False))
    return 0


def run_efficiency(args: argparse.Namespace) -> int:
    from collect import queries
    from collect.capacity import machine_capacity
    from collect.efficiency import REFERENCE, by_architecture
    from collect.report import chosen_run

    with reading(args.db) as store:
        run = chosen_run(store, args.run, queries.run_order(store))
        asked = _budgets_asked(args)
        # without a budget, as `best`: the searches, each under the budget it searched
        machines = machine_capacity(store, run, *(asked or ({}, 1.0)))
    if not asked and not machines.empty:
        machines = machines[machines["found_by"] != "grid"]
    compared = by_architecture(machines)
    measure = "capacity under the budget" if asked else "capacity searches, each under its budget"
    print(f"efficiency per architecture, run {run} ({measure}); ratios to {REFERENCE} in the same class:")
    if compared.empty:
        print("no valid capacity with evidence in this run" + ("" if asked else "; --p99-budget-ms N adds the grids"))
        return 0
    print(tables.efficiency_table(compared, REFERENCE).to_markdown(index=False, disable_numparse=True))
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

    if args.output.suffix:
        _directory_for_output(args.output.parent, "the export's file goes in it")
    else:
        _directory_for_output(args.output, "the export's dataset directory")
    with reading(args.db) as store:
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
    with writing(args.db) as store:
        added, already = import_dataset(store, args.dataset)
    print(f"import: {added} new, {already} already stored, into {args.db}")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from collect.legacy import is_sqlite, migrate

    if not is_sqlite(args.db):
        raise InputError(f"{args.db}: not a SQLite store of an earlier recbench")
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
        run_id=args.run or "",
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

    with reading(args.db) as store:
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


def run_ingest(args: argparse.Namespace) -> int:
    from collect.progress import progress

    results, db = args.results, args.db
    if not results.is_dir():
        raise InputError(f"{results}: no such results directory")
    with writing(db) as store, progress("ingest: instance results read") as update:
        report = ingest(results, store, update)
    for problem in report.problems:
        print(f"collect: skipped {clip(problem, 2000)}", file=sys.stderr)
    if not report.found:
        raise InputError(
            f"{results}: no results in this tree "
            "(expected <run_id>/<host>/<model>/<config_id>/<instance>/metadata.json)"
        )
    print(
        f"ingest: {report.added} new, {report.already_stored} already stored, {len(report.problems)} skipped, into {db}"
    )
    return EXIT_SKIPPED if report.problems else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one line on standard error and its own exit code
    (collect.errors.EXIT_CODES), and 1 only ever means an alarm."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already said in one line
        return done.code if isinstance(done.code, int) else 2
    try:
        return args.func(args)
    except CollectError as err:
        return _fail(clip(err), err.exit_code)
    except OSError as err:
        fault = filesystem_error(err)
        return _fail(clip(fault), fault.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as err:  # a bug: one line and its own code; the traceback on request
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            traceback.print_exc()
        hint = "" if os.environ.get(DEBUG_ENV, "") not in ("", "0") else f"; {DEBUG_ENV}=1 shows the traceback"
        return _fail(clip(f"internal error: {type(err).__name__}: {err}") + hint, EXIT_INTERNAL)


def _fail(message: str, code: int) -> int:
    print(f"collect: {message}", file=sys.stderr)
    return code
