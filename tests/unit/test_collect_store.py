"""The DuckDB store's promises: one ingest one transaction, SQLite stores migrated row for row, Parquet
datasets as the exchange between controllers, and commands that only read never create anything."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import duckdb
import pytest

from collect import ingest as ingest_module
from collect.cli import main
from collect.exchange import export_dataset, import_dataset
from collect.ingest import ingest
from collect.store import INSTANCE_COLUMNS, POINT_COLUMNS, V1_COLUMNS, Store
from tests.conftest import REPO, collect_cli
from tests.results_tree import place, place_run, two_run_store

pytestmark = pytest.mark.unit

LEGACY = REPO / "tests" / "fixtures" / "store_sqlite_v1" / "recbench.sqlite"


def legacy_columns(table: str) -> str:
    """The columns a SQLite store of schema 1 has (the ones schema 2 added are not among them)."""
    return ", ".join(
        c for c in {"instances": INSTANCE_COLUMNS, "points": POINT_COLUMNS}[table] if c in V1_COLUMNS[table]
    )


def rows(db: Path, table: str) -> list[tuple]:
    columns = legacy_columns(table)
    with duckdb.connect(str(db), read_only=True) as conn:
        return sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall())


def legacy_rows(db: Path, table: str) -> list[tuple]:
    columns = legacy_columns(table)
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall())


def test_a_sqlite_store_is_migrated_on_first_use_row_for_row_and_kept(tmp_path: Path) -> None:
    old = tmp_path / "results" / "recbench.sqlite"
    old.parent.mkdir()
    shutil.copy(LEGACY, old)
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    said: list[str] = []
    # The default path names the new store; the old default file beside it is what gets migrated.
    from collect.legacy import migrate_if_legacy

    new = migrate_if_legacy(tmp_path / "results" / "recbench.duckdb", said.append)
    assert new == tmp_path / "results" / "recbench.duckdb" and new.is_file()
    assert said[-1] == f"store: migrated 7 instances and 18 points; {old} is kept"
    for table in ("instances", "points"):
        assert rows(new, table) == legacy_rows(old, table), table
    assert hashlib.sha256(old.read_bytes()).hexdigest() == digest
    assert not list(tmp_path.rglob(".*.partial"))
    with Store(new) as store:  # opens as a store, answers as one
        from collect import queries

        assert queries.run_order(store) == ["2026-11-01", "2026-11-02", "2026-11-03"]
        assert set(queries.failures(store, "2026-11-03")["status"]) == {"failed"}


def test_cli_migrate_names_its_counts_and_a_failed_copy_leaves_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    old = tmp_path / "old.sqlite"
    shutil.copy(LEGACY, old)
    from collect import legacy

    def broken(store, table, columns, chunk):  # the copy dies half-way (disk full, killed)
        raise OSError("No space left on device")

    monkeypatch.setattr(legacy, "_append", broken)
    with pytest.raises(OSError):
        legacy.migrate(old, tmp_path / "old.duckdb")
    assert not (tmp_path / "old.duckdb").exists() and not list(tmp_path.glob(".*partial"))
    monkeypatch.undo()
    assert main(["migrate", "--db", str(old)]) == 0
    assert "migrate: 7 instance(s) and 18 point(s) now in" in capsys.readouterr().out
    assert main(["migrate", "--db", str(tmp_path / "old.duckdb")]) == 2


def test_one_ingest_is_one_transaction(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "results"
    place_run(root, "r1")
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        ingest(root, store)
    before = {table: rows(db, table) for table in ("instances", "points")}
    place_run(root, "r2")
    monkeypatch.setattr(ingest_module, "CHUNK", 1)  # one instance per hand-over to the engine
    calls = {"n": 0}
    real = Store.add_frames

    def dies_on_the_third(self, instances, points):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the collector killed mid-ingest
        return real(self, instances, points)

    monkeypatch.setattr(Store, "add_frames", dies_on_the_third)
    with Store(db) as store, pytest.raises(KeyboardInterrupt):
        ingest(root, store)
    assert calls["n"] == 3  # two instances of r2 had been handed over when it died
    assert {table: rows(db, table) for table in ("instances", "points")} == before
    monkeypatch.undo()
    with Store(db) as store:
        assert ingest(root, store).added == 3


def test_a_dataset_export_moves_a_store_to_another_controller_and_shards_merge(tmp_path: Path) -> None:
    db = two_run_store(tmp_path)
    with Store(db) as store:
        written = export_dataset(store, tmp_path / "share")
    assert written == {"instances": 6, "points": 18}
    assert sorted(p.name for p in (tmp_path / "share" / "points").iterdir()) == [
        "run_id=2026-11-01",
        "run_id=2026-11-02",
    ]
    elsewhere = tmp_path / "elsewhere.duckdb"
    with Store(elsewhere) as store:
        assert import_dataset(store, tmp_path / "share") == (6, 0)
        assert import_dataset(store, tmp_path / "share") == (0, 6)  # twice changes nothing
    for table in ("instances", "points"):
        assert rows(elsewhere, table) == rows(db, table), table

    # A second controller measured other hosts in the same run: its export merges into the share.
    shard = tmp_path / "shard2"
    levels = [1, 2, 3, 4]
    place(shard, "2026-11-02", "x86-01", "dlrm", "dlrm-entire-b16-x", "numa0", "plain.csv", "complete", levels, [])
    with Store(tmp_path / "shard2.duckdb") as store:
        ingest(shard, store)
        export_dataset(store, tmp_path / "share", ["2026-11-02"])
    with Store(elsewhere) as store:
        assert import_dataset(store, tmp_path / "share") == (1, 6)
        assert store.count("instances") == 7


def test_a_damaged_dataset_is_one_line_and_stores_nothing(tmp_path: Path, capsys) -> None:
    db = two_run_store(tmp_path)
    with Store(db) as store:
        export_dataset(store, tmp_path / "share")
    victim = next((tmp_path / "share" / "points").rglob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:100])
    target = tmp_path / "t.duckdb"
    assert main(["import", str(tmp_path / "share"), "--db", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"collect: {tmp_path / 'share'}: ") and "\n" not in err
    with Store(target) as store:
        assert store.count("instances") == store.count("points") == 0
    assert main(["import", str(tmp_path / "nothing"), "--db", str(target)]) == 2


@pytest.mark.parametrize(
    "command",
    [["best"], ["report", "--out", "{tmp}/reports"], ["compare"], ["export", "{tmp}/x.csv"]],
)
def test_commands_that_only_read_create_nothing(tmp_path: Path, command: list[str], capsys) -> None:
    db = tmp_path / "no" / "such" / "x.duckdb"
    argv = [part.replace("{tmp}", str(tmp_path)) for part in command]
    assert main([*argv, "--db", str(db)]) == 2
    assert capsys.readouterr().err.strip() == f"collect: {db}: no store here; `python -m collect ingest` creates one"
    assert not (tmp_path / "no").exists()


def test_ingest_says_when_a_tree_holds_no_results_and_shows_progress(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    empty = collect_cli("ingest", str(tmp_path / "empty"), "--db", str(tmp_path / "s.duckdb"))
    assert empty.returncode == 2  # bad input (collect.errors.EXIT_USAGE), never 1: that is the alarm
    assert f"collect: {tmp_path / 'empty'}: no results in this tree" in empty.stderr
    place_run(tmp_path / "results", "r1")
    full = collect_cli("ingest", str(tmp_path / "results"), "--db", str(tmp_path / "s.duckdb"))
    assert full.returncode == 0, full.stderr
    assert "ingest: instance results read: 3/3" in full.stderr
    assert full.stdout.strip() == f"ingest: 3 new, 0 already stored, 0 skipped, into {tmp_path / 's.duckdb'}"
