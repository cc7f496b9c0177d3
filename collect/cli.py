"""`python -m collect`: bring fleet results into the store (more commands join as they land)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collect.ingest import ingest
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
    return top


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
    args = parser().parse_args(argv)
    try:
        return run_ingest(args.results, args.db)
    except StoreError as err:
        print(f"collect: {err}", file=sys.stderr)
        return 2
