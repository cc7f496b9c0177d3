"""The collector's CLI as the ecosystem writes one (issue 20, point 5): shared options declared once in
parent parsers, dispatch by set_defaults(func=...), one base error type with an exit code per kind and
never 1 for a failure, a last-resort handler that keeps bugs debuggable, migration as a step before
opening (no store <-> legacy import circle), and queries through the store."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collect import cli, errors
from collect.cli import main, parser
from collect.store import Store
from tests.conftest import REPO, collect_cli
from tests.results_tree import two_run_trees

pytestmark = pytest.mark.unit

LEGACY = REPO / "tests" / "fixtures" / "store_sqlite_v1" / "recbench.sqlite"
COMMANDS = ["ingest", "report", "regressions", "twins", "pull", "best", "export", "import", "migrate", "nightly"]
COMMANDS += ["compare", "efficiency"]


def test_help_documents_the_exit_codes_and_every_command_dispatches_by_set_defaults(capsys) -> None:
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "exit codes:" in shown
    for code in errors.EXIT_CODES:
        assert f"  {code:>3}  " in shown, code
    assert 1 in errors.EXIT_CODES and "alarm" in errors.EXIT_CODES[1]
    top = parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert sorted(commands) == sorted(COMMANDS)
    for name, command in commands.items():
        assert callable(command.get_default("func")), name
        assert "exit codes:" in (command.epilog or ""), name
    # the shared options are declared once (a parent parser each), not once per command
    source = Path(cli.__file__).read_text()
    assert source.count('"--db"') <= 2 and source.count('"--thresholds"') == 1, "declare shared options once"
    assert source.count("if args.command ==") == 0


def test_every_command_parses_with_its_defaults_alone() -> None:
    # argparse applies an option's type to a text default: a default the type refuses (nightly's run
    # id once was "") would refuse every invocation that leaves the option out, as cron's does
    required = {"ingest": ["results"], "export": ["out.csv"], "import": ["dataset"], "pull": ["-i", "inventory.yml"]}
    for name in COMMANDS:
        args = parser().parse_args([name, *required.get(name, [])])
        assert callable(args.func), name
    assert parser().parse_args(["nightly"]).run is None


def test_every_failure_kind_derives_from_one_base_with_a_code_that_is_never_the_alarm() -> None:
    from collect.baseline import BaselineError
    from collect.capacity import BudgetError
    from collect.changes import ThresholdsError
    from collect.exchange import ExchangeError
    from collect.inventory import InventoryError
    from collect.legacy import MigrationError
    from collect.nightly import NightlyError
    from collect.report import ReportError
    from collect.store import StoreError

    kinds = [BaselineError, BudgetError, ThresholdsError, ExchangeError, InventoryError, MigrationError]
    kinds += [NightlyError, ReportError, StoreError, errors.FilesystemError, errors.NameRefused, errors.NoStore]
    for kind in kinds:
        assert issubclass(kind, errors.CollectError), kind
        assert kind.exit_code in errors.EXIT_CODES and kind.exit_code not in (errors.EXIT_OK, errors.EXIT_ALARM)
    assert StoreError.exit_code == errors.EXIT_STORE and errors.FilesystemError.exit_code == errors.EXIT_FILESYSTEM


def test_a_usage_error_is_one_line_with_code_2(capsys) -> None:
    assert main(["best", "--p99-budget-ms"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("collect: best: argument --p99-budget-ms")
    assert main(["nosuchcommand"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_an_unexpected_error_is_one_line_with_its_own_code_and_a_traceback_on_request(tmp_path: Path) -> None:
    db = two_run_trees(tmp_path)
    # A bug planted in a query module (a real subprocess, a real store): not exit 1, not a traceback.
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(
        "import collect.queries\n"
        "def broken(store):\n    raise ZeroDivisionError('planted bug')\n"
        "collect.queries.run_order = broken\n"
    )
    import os

    path = f"{plant}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    quiet = collect_cli("best", "--db", str(db), PYTHONPATH=path)
    assert quiet.returncode == errors.EXIT_INTERNAL == 70, quiet.stderr
    assert quiet.stderr.count("\n") == 1
    assert quiet.stderr.startswith("collect: internal error: ZeroDivisionError: planted bug")
    assert "RECBENCH_DEBUG=1" in quiet.stderr
    loud = collect_cli("best", "--db", str(db), PYTHONPATH=path, RECBENCH_DEBUG="1")
    assert loud.returncode == 70
    assert "Traceback (most recent call last)" in loud.stderr and "raise ZeroDivisionError" in loud.stderr


def test_no_ordinary_failure_exits_1(tmp_path: Path, capsys) -> None:
    db = two_run_trees(tmp_path)
    bad_budgets = tmp_path / "b.yml"
    bad_budgets.write_text("default_p99_ms: [1, 2]\n")
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(db.read_bytes()[:3000])
    cases = {
        ("best", "--db", str(tmp_path / "none.duckdb")): errors.EXIT_USAGE,
        ("best", "--db", str(db), "--budgets", str(bad_budgets)): errors.EXIT_USAGE,
        ("best", "--db", str(db), "--run", "../x"): errors.EXIT_USAGE,
        ("best", "--db", str(damaged)): errors.EXIT_STORE,
        ("report", "--db", str(db), "--out", str(bad_budgets)): errors.EXIT_FILESYSTEM,
        ("ingest", str(tmp_path / "tree-2026-11-01"), "--db", str(bad_budgets / "s.duckdb")): errors.EXIT_FILESYSTEM,
    }
    for argv, code in cases.items():
        assert main(list(argv)) == code, argv
        err = capsys.readouterr().err
        assert err.startswith("collect: ") and err.count("\n") == 1, (argv, err)


def test_the_store_does_not_import_legacy_and_opening_never_migrates(tmp_path: Path, capsys) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, collect.store; print('collect.legacy' in sys.modules)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(LEGACY, results / "recbench.sqlite")
    with Store(results / "recbench.duckdb") as store:  # the constructor opens; it does not migrate
        assert store.count("instances") == 0
    (results / "recbench.duckdb").unlink()
    # the commands migrate first, as a step before opening: the same answer as before
    assert main(["best", "--db", str(results / "recbench.duckdb"), "--run", "2026-11-01"]) == 0
    out = capsys.readouterr()
    assert "store: migrated 7 instances and 18 points" in out.err and "best throughput" in out.out


def test_queries_go_through_the_store_not_its_connection() -> None:
    for module in ("queries", "exchange", "legacy", "report", "twins", "changes", "aggregate", "nightly", "cli"):
        text = (REPO / "collect" / f"{module}.py").read_text()
        assert "store.db" not in text, module


def test_nightly_says_when_results_were_skipped_and_the_docs_list_every_exit_code() -> None:
    from collect.nightly import NightlyOutcome

    def outcome(**changes: object) -> NightlyOutcome:
        fields = {"run_id": "r", "playbook_status": "successful", "failed_hosts": [], "regressions": []}
        return NightlyOutcome(**(fields | {"report_dir": Path("r"), "log_dir": Path("l")} | changes))

    assert outcome().exit_code == errors.EXIT_OK
    assert outcome(skipped=2).exit_code == errors.EXIT_SKIPPED
    assert outcome(skipped=2, failed_hosts=["kp-01"]).exit_code == errors.EXIT_HOSTS
    assert outcome(skipped=2, regressions=["drop"]).exit_code == errors.EXIT_ALARM
    table = (REPO / "docs" / "collector.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(line.split("|")[1]) for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()}
    assert documented == set(errors.EXIT_CODES)
