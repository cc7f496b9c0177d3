"""Ordinary faults are one line with a documented exit code, never 1 (issue 21, point 5), and numbers are
numbers (point 4, collector side): real DuckDB stores, real YAML files, real CLI invocations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collect import errors
from collect.cli import main
from collect.errors import StoreError
from collect.store import Store
from tests.conftest import REPO
from tests.results_tree import place_run, two_run_trees

pytestmark = pytest.mark.unit


def one_line(capsys) -> str:
    """The one line a failure says on standard error (progress lines of long work aside), no traceback."""
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if not line.startswith(("ingest: ", "migrate: ", "store: "))]
    assert len(said) == 1 and said[0].startswith("collect: "), err
    return said[0]


# --- a damaged store ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zeroed tail"])
def test_a_damaged_store_is_one_line_with_the_store_code(tmp_path: Path, damage: str, capsys) -> None:
    db = two_run_trees(tmp_path)
    data = db.read_bytes()
    if damage == "truncated":
        db.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        db.write_bytes(b"not a store at all " * 200)
    else:
        db.write_bytes(data[:8192] + b"\0" * (len(data) - 8192))
    reads = [["best"], ["report", "--out", str(tmp_path / "reports")], ["regressions"], ["compare"], ["twins"]]
    for argv in [*reads, ["ingest", str(tmp_path / "tree-2026-11-02")]]:
        code = main([*argv, "--db", str(db)])
        err = one_line(capsys)
        assert code == errors.EXIT_STORE, (argv, err)
        assert str(db) in err


# --- read-only stores -----------------------------------------------------------------------------


def test_commands_that_only_read_open_the_store_read_only_and_a_write_is_refused(tmp_path: Path, capsys) -> None:
    db = two_run_trees(tmp_path)
    with Store.existing(db) as store:
        assert store.read_only and store.count("instances") == 6
        with pytest.raises(StoreError, match="opened read-only, this command cannot write to it"):
            store.transaction()
        with pytest.raises(StoreError, match="opened read-only"):
            store.execute("DELETE FROM points")  # the engine refuses too, in one line
    # Another process holds the store open read-only (a report being read, a second shell): every
    # command that only reads still answers, which a read-write open could not.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-c",
            f"import duckdb\nc = duckdb.connect({str(db)!r}, read_only=True)\nprint('held')\ninput()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        reads = [
            ["best", "--run", "2026-11-01"],
            ["compare"],
            ["twins"],
            ["regressions"],
            ["export", str(tmp_path / "x.csv")],
            ["report", "--out", str(tmp_path / "reports")],
        ]
        for argv in reads:
            assert main([*argv, "--db", str(db)]) == 0, (argv, capsys.readouterr().err)
        capsys.readouterr()
        # a command that writes cannot have the file while another process reads it: one line, code 5
        place_run(tmp_path / "more", "2026-11-03")
        assert main(["ingest", str(tmp_path / "more"), "--db", str(db)]) == errors.EXIT_STORE
        assert str(db) in one_line(capsys)
    finally:
        holder.communicate("\n", timeout=30)


def _read_only_mount(directory: Path, command: str) -> subprocess.CompletedProcess[str]:
    """COMMAND with DIRECTORY read-only: chmod a-w for a user, a private read-only bind mount for root
    (whom chmod does not stop)."""
    if os.geteuid() != 0:
        for path in [*directory.rglob("*"), directory]:
            path.chmod(path.stat().st_mode & ~0o222)
        return subprocess.run(["sh", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) for a read-only bind mount")
    script = f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory} && {command}"
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    if "mount:" in proc.stderr or "unshare:" in proc.stderr:
        pytest.skip(f"no read-only bind mount here: {proc.stderr.strip()[:200]}")
    return proc


def test_a_store_on_a_read_only_filesystem_is_readable_and_an_ingest_into_it_is_one_line(tmp_path: Path) -> None:
    db = two_run_trees(tmp_path)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    shutil.move(db, shelf / "store.duckdb")
    place_run(tmp_path / "more", "2026-11-03")
    py = f"{sys.executable} -m collect"
    proc = _read_only_mount(
        shelf,
        f"{py} best --run 2026-11-01 --db {shelf}/store.duckdb && echo READ-OK; "
        f"{py} ingest {tmp_path / 'more'} --db {shelf}/store.duckdb; echo INGEST=$?",
    )
    assert "READ-OK" in proc.stdout, proc.stderr
    assert "best throughput per model" in proc.stdout
    assert f"INGEST={errors.EXIT_STORE}" in proc.stdout, proc.stderr
    refusal = [line for line in proc.stderr.splitlines() if line.startswith("collect: ")]
    assert len(refusal) == 1 and f"{shelf}/store.duckdb" in refusal[0], proc.stderr


# --- the filesystem -------------------------------------------------------------------------------


def test_a_file_where_a_directory_belongs_is_one_line_with_the_filesystem_code(tmp_path: Path, capsys) -> None:
    db = two_run_trees(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way\n")
    place_run(tmp_path / "fresh", "2026-11-09")
    cases = [
        ["report", "--db", str(db), "--out", str(blocker)],  # report --out naming a file
        ["report", "--db", str(db), "--out", str(blocker / "reports")],
        ["export", str(blocker / "points.csv"), "--db", str(db)],
        ["export", str(blocker / "dataset"), "--db", str(db)],
        ["regressions", "--db", str(db), "--output", str(blocker / "r.json")],
        ["ingest", str(tmp_path / "fresh"), "--db", str(blocker / "store.duckdb")],  # unwritable store directory
        ["best", "--db", str(tmp_path)],  # --db naming a directory
    ]
    for argv in cases:
        assert main(argv) == errors.EXIT_FILESYSTEM, argv
        err = one_line(capsys)
        assert str(blocker) in err or str(tmp_path) in err, err
    assert blocker.read_text() == "in the way\n"


# --- numbers are numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "1e999", "0", "-5", "\u0663\u0660\u0660", "\uff13\uff10\uff10", "", "300ms"]
)
def test_a_budget_option_that_is_not_a_positive_ascii_number_is_refused(tmp_path: Path, value: str, capsys) -> None:
    db = two_run_trees(tmp_path)
    for command in ("best", "twins"):
        assert main([command, "--db", str(db), "--p99-budget-ms", value]) == errors.EXIT_USAGE
        assert "--p99-budget-ms" in one_line(capsys)
    assert main(["best", "--db", str(db), "--p99-budget-ms", "300"]) == 0


@pytest.mark.parametrize("value", ["\u0663", "\uff13", "0", "-1", "1.5", "nan"])
def test_pull_counts_take_ascii_digits_only(tmp_path: Path, value: str, capsys) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {hosts: {kp-01: {}}}\n")
    assert main(["pull", "-i", str(inventory), "--retries", value, "--dest", str(tmp_path / "r")]) == 2
    assert "--retries" in one_line(capsys)
    assert not (tmp_path / "r").exists()


# Nine levels of nine aliases each: 9**9 (387 M) items if anything expanded it (a repr in a message would).
BOMB = (
    "[&a [x, x, x, x, x, x, x, x, x], "
    + ", ".join(f"&{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    + "]"
)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("default_p99_ms: .nan\n", "default_p99_ms: must be a finite number above 0, not NaN"),
        ("default_p99_ms: .inf\n", "default_p99_ms: must be a finite number above 0, not infinite"),
        ("default_p99_ms: 0\n", "default_p99_ms: must be a finite number above 0"),
        ("default_p99_ms: -60\n", "default_p99_ms: must be a finite number above 0"),
        ("default_p99_ms: true\n", "default_p99_ms: must be a number, not a boolean"),
        ("default_p99_ms: '300'\n", "default_p99_ms: must be a number, not text"),
        ("default_p99_ms: 300\nmodels: {dlrm: .nan}\n", "models.dlrm: must be a finite number above 0, not NaN"),
        ("default_p99_ms: 300\nmodel: {dlrm: 60}\n", "unknown key(s) model"),
        ("default_p99_ms: 300\nmodels: [dlrm, 60]\n", "models: must be a mapping, not a list"),
        ("- default_p99_ms: 300\n", "must be a mapping, not a list"),
        ("default_p99_ms: 300\nmodels: {../x: 60}\n", "is not a valid name"),
        (f"default_p99_ms: {BOMB}\n", "default_p99_ms: must be a number, not a list"),
        (f"default_p99_ms: 300\nmodels: {BOMB}\n", "models: must be a mapping, not a list"),
        (f"default_p99_ms: 300\nmodels: {{dlrm: {BOMB}}}\n", "models.dlrm: must be a number, not a list"),
        (f"default_p99_ms: 300\nextra: {BOMB}\n", "unknown key(s) extra"),
        ("default_p99_ms: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_a_bad_budgets_file_is_one_bounded_line_naming_the_key(tmp_path: Path, text: str, said: str, capsys) -> None:
    db = two_run_trees(tmp_path)
    budgets = tmp_path / "budgets.yml"
    budgets.write_text(text)
    for argv in (["best", "--budgets", str(budgets)], ["report", "--budgets", str(budgets)]):
        started = time.monotonic()
        assert main([*argv, "--db", str(db)]) == errors.EXIT_USAGE
        err = one_line(capsys)
        assert said in err and str(budgets) in err, err
        assert len(err) <= errors.MESSAGE_LIMIT + len("collect: ")
        assert time.monotonic() - started < 10


def _thresholds(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "collect" / "thresholds.yml").read_text()
    assert old in text
    path = tmp_path / "thresholds.yml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("min_magnitude: 0.05", "min_magnitude: .nan", "change_points.min_magnitude: must be a finite number above 0"),
        ("max_pvalue: 0.001", "max_pvalue: .inf", "change_points.max_pvalue: must be a finite number above 0"),
        ("max_pvalue: 0.001", "max_pvalue: 5", "change_points.max_pvalue: must be at most 1"),
        ("floor: 0.05\n  mads: 3.0\n  min_history", "floor: -0.05\n  mads: 3.0\n  min_history", "newest_run.floor"),
        ("window_len: 30", "window_len: 30.5", "change_points.window_len: must be a whole number"),
        ("alarm_runs: 3", "alarm_runs: 3\n  alarm_run: 4", "change_points: unknown key(s) alarm_run"),
        ("outliers:", "outlier: {}\noutliers:", "unknown key(s) outlier"),
        ("  floor: 0.05\n  mads: 3.0\n  min_group: 3", "  - 1\n  - 2", "twins: must be a mapping, not a list"),
    ],
)
def test_a_bad_thresholds_file_is_one_line_naming_the_key(tmp_path: Path, old: str, new: str, said: str, capsys):
    db = two_run_trees(tmp_path)
    thresholds = _thresholds(tmp_path, old, new)
    for command in ("regressions", "twins", "report"):
        assert main([command, "--db", str(db), "--thresholds", str(thresholds)]) == errors.EXIT_USAGE, command
        err = one_line(capsys)
        assert said in err and str(thresholds) in err, err


def test_a_thresholds_file_with_a_yaml_bomb_is_a_short_line_in_little_time(tmp_path: Path, capsys) -> None:
    db = two_run_trees(tmp_path)
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text(f"change_points: {BOMB}\n")
    started = time.monotonic()
    assert main(["regressions", "--db", str(db), "--thresholds", str(thresholds)]) == errors.EXIT_USAGE
    err = one_line(capsys)
    assert "change_points: must be a mapping, not a list" in err and len(err) < 400
    assert time.monotonic() - started < 10
