"""The collector's parsing, store and ingest, on real perf_analyzer CSVs and broken variants of them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from collect.ingest import ingest
from collect.perfcsv import PerfCsvError, parse_perf_csv
from collect.store import MIGRATIONS, Store, StoreError
from tests.conftest import collect_cli
from tests.results_tree import FIXTURES, place, place_run

pytestmark = pytest.mark.unit


def test_plain_and_verbose_csvs_parse_sorted_by_concurrency() -> None:
    plain = parse_perf_csv(FIXTURES / "plain.csv")
    verbose = parse_perf_csv(FIXTURES / "verbose.csv")
    assert [p.concurrency for p in plain] == [1, 2, 3, 4]
    assert [p.concurrency for p in verbose] == [1, 2, 3, 4]  # the file lists them by throughput
    assert verbose[1].throughput == 9937.33 and verbose[1].p99_us == 4921 and verbose[1].avg_latency_us == 3197
    assert plain[0].avg_latency_us is None and plain[0].client_send_us == 27


def test_a_sweep_that_stopped_early_has_the_levels_it_reached() -> None:
    assert [p.concurrency for p in parse_perf_csv(FIXTURES / "stopped_early.csv")] == [1]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: "", "empty"),
        (lambda t: t[: len(t) - 7], "truncated"),
        (lambda t: t.replace("9937.33", "lots"), "Inferences/Second is not a number: 'lots'"),
        (lambda t: t.replace("p99 latency", "p99"), "not a perf_analyzer CSV (no p99 latency column)"),
        (lambda t: t + "2,1,1,1,1,1,1,1,1,1,1\n", "concurrency 2 appears twice"),
        (lambda t: t.replace("\n3,", "\n3,1,"), "12 fields, the header has 11"),
        (lambda t: t.replace("4921", "-4921"), "finite non-negative"),
    ],
)
def test_broken_csvs_name_the_file_and_line(tmp_path: Path, mutate, message: str) -> None:
    path = tmp_path / "perf.csv"
    path.write_text(mutate((FIXTURES / "verbose.csv").read_text()))
    with pytest.raises(PerfCsvError) as caught:
        parse_perf_csv(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    place_run(root, "r1")
    place(root, "r1", "kp-02", "dssm", "dssm-entire-b16-y", "numa0", None, "failed", [], [1, 2])
    return root


def dump(db: Path) -> list[tuple]:
    """Every stored row (the ingest stamp aside, which records when a row came)."""
    with duckdb.connect(str(db), read_only=True) as conn:
        return sorted(conn.execute("SELECT * FROM points").fetchall()) + sorted(
            conn.execute("SELECT * EXCLUDE (ingested_at) FROM instances").fetchall()
        )


def test_ingest_stores_every_point_and_a_second_ingest_changes_nothing(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        report = ingest(tree, store)
        assert (report.added, report.problems) == (4, [])
        assert store.count("instances") == 4
        assert store.count("points") == 4 + 4 + 1
    before = dump(db)
    with Store(db) as store:
        again = ingest(tree, store)
    assert (again.added, again.already_stored) == (0, 4)
    assert dump(db) == before


def test_broken_files_are_reported_and_skipped_and_nothing_stored_is_lost(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        ingest(tree, store)
    before = dump(db)
    broken_csv = place(tree, "r2", "kp-01", "dlrm", "c", "numa0", "verbose.csv", "complete", [1, 2, 3, 4], [])
    (broken_csv / "perf.csv").write_text((broken_csv / "perf.csv").read_text()[:-9])
    bad_json = place(tree, "r2", "kp-01", "dlrm", "c", "numa1", "plain.csv", "complete", [1, 2, 3, 4], [])
    (bad_json / "metadata.json").write_text('{"run_id": "r2",')
    missing = place(tree, "r2", "kp-02", "dlrm", "c", "numa0", None, "complete", [1], [])
    lying = place(tree, "r2", "kp-02", "dlrm", "c", "numa1", "plain.csv", "complete", [1, 2], [])
    good = place(tree, "r2", "kp-03", "dlrm", "c", "numa0", "plain.csv", "complete", [1, 2, 3, 4], [])
    with Store(db) as store:
        report = ingest(tree, store)
    assert report.added == 1
    assert sorted(p.split(":")[0] for p in report.problems) == sorted(
        [
            str(broken_csv / "perf.csv"),
            str(bad_json / "metadata.json"),
            str(missing / "perf.csv"),
            str(lying / "perf.csv"),
        ]
    )
    after = dump(db)
    assert set(before) <= set(after)
    assert any(row[:2] == ("r2", "kp-03") for row in after)
    assert good.exists()


def test_the_schema_is_versioned(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        assert store.version == len(MIGRATIONS)
    with duckdb.connect(str(db)) as conn:
        conn.execute("UPDATE recbench_schema SET version = ?", [len(MIGRATIONS) + 1])
    with pytest.raises(StoreError, match="newer than this collector knows"):
        Store(db)


def test_cli_reports_problems_with_a_non_zero_exit(tree: Path, tmp_path: Path) -> None:
    (tree / "r1" / "kp-01" / "dlrm" / "dlrm-entire-b16-x" / "numa1" / "perf.csv").write_text("")
    db = tmp_path / "cli.duckdb"
    proc = collect_cli("ingest", str(tree), "--db", str(db))
    assert proc.returncode == 3  # collect.errors.EXIT_SKIPPED: some results skipped, the rest stored
    assert "ingest: 3 new, 0 already stored, 1 skipped" in proc.stdout
    assert "numa1/perf.csv: empty" in proc.stderr
    missing = collect_cli("ingest", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"collect: {tmp_path / 'nope'}: no such results directory"
