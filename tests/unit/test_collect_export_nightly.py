"""`collect export` writes a run's points as CSV or Parquet; `collect nightly` never overlaps itself and
fails in one line on a bad inventory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from collect.cli import main
from collect.nightly import NightlyError, NightlyOptions, exclusive, nightly
from tests.conftest import REPO
from tests.results_tree import two_run_store

pytestmark = pytest.mark.unit


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return two_run_store(tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_writes_the_runs_points(store_path: Path, tmp_path: Path, suffix: str) -> None:
    everything, one = tmp_path / f"all{suffix}", tmp_path / "out" / f"one{suffix}"
    assert main(["export", str(everything), "--db", str(store_path)]) == 0
    assert main(["export", str(one), "--db", str(store_path), "--run", "2026-11-02"]) == 0
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    all_points, run_points = read(everything), read(one)
    assert set(all_points["run_id"].astype(str)) == {"2026-11-01", "2026-11-02"}
    assert set(run_points["run_id"].astype(str)) == {"2026-11-02"}
    assert len(run_points) * 2 == len(all_points) > 0
    assert {"host", "model", "config_id", "instance", "concurrency", "throughput", "p99_us", "batch_size"} <= set(
        run_points.columns
    )
    assert not list(tmp_path.rglob(".*.partial"))


def test_export_refuses_an_unknown_run_and_format(store_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path / "x.csv"), "--db", str(store_path), "--run", "nope"]) == 2
    assert main(["export", str(tmp_path / "x.xlsx"), "--db", str(store_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        f"collect: run 'nope' is not in {store_path}",
        f"collect: {tmp_path / 'x.xlsx'}: the file name must end in .csv or .parquet, "
        "or name a directory for a Parquet dataset",
    ]
    assert not (tmp_path / "x.csv").exists()


def test_a_second_nightly_run_fails_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "nightly.lock"
    script = f"import pathlib\nfrom collect.nightly import exclusive\nwith exclusive(pathlib.Path({str(lock)!r})):\n"
    script += " print('held', flush=True)\n input()"
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(NightlyError, match=r"another nightly run holds .*nightly.lock \(pid \d+ since"),
            exclusive(lock),
        ):
            pass
    finally:
        holder.communicate("\n", timeout=30)
    with exclusive(lock):  # released when the first run ends
        pass


def test_nightly_names_a_missing_inventory_in_one_line(tmp_path: Path) -> None:
    options = NightlyOptions(
        inventory=tmp_path / "nope.yml",
        limit="kunpeng",
        results=tmp_path / "results",
        db=tmp_path / "db.duckdb",
        reports=tmp_path / "reports",
        logs=tmp_path / "logs",
        lock=tmp_path / "lock",
    )
    with pytest.raises(NightlyError, match=r"inventory .*nope.yml does not exist"):
        nightly(options)
    assert not (tmp_path / "logs").exists()
