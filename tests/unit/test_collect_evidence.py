"""The collector's side of the evidence (issue 23, point 5): each point's and each instance's evidence and
verdict in the store (schema 3, stores of schema 2 and older exports upgraded, NULL before evidence,
never a guess), shown by `collect best`, the capacity table and the report; architectures compared per
core used and per watt like with like; twins explained by the clock and the server's CPU share.

Real records: tests/fixtures/tree_evidence (a grid, a closed and an open-loop search against the
known-curve server, whose workers sleep: "latency", no meter, no cpufreq). Copies of them are edited
where a figure the development machine cannot give (watts, a clock, a saturated server) is needed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from collect.capacity import machine_capacity, machine_evidence
from collect.changes import load_thresholds
from collect.cli import main
from collect.efficiency import by_architecture
from collect.exchange import export_dataset, import_dataset
from collect.ingest import ingest
from collect.store import ADDED_IN, INSTANCE_EVIDENCE, MIGRATIONS, POINT_EVIDENCE, TABLES, Store, StoreError
from collect.tables import limit_shown, watts_shown, with_evidence_shown
from collect.twins import twins
from tests.conftest import REPO

pytestmark = pytest.mark.unit

TREE = REPO / "tests" / "fixtures" / "tree_evidence"
RUN = "2026-12-02"
HOST = "controller"
GRID = "dlrm-single-b1-f5aa1085bb"
CLOSED = "dlrm-single-b1-cap60ms-0be76de4a3"
OPEN = "dlrm-single-b1-cap60ms-poisson-5c561e7532"
NO_RAPL = "unavailable: no RAPL: /sys/class/powercap is absent"


def metadata_of(config: str) -> dict:
    return json.loads((TREE / RUN / HOST / "dlrm" / config / "numa0" / "metadata.json").read_text())


def clone(root: Path, config: str, host: str, edit: Callable[[dict], None] | None = None, run: str = RUN) -> None:
    """The fixture's instance of CONFIG as HOST's in RUN under ROOT, its metadata edited by EDIT."""
    meta = metadata_of(config) | {"host": host, "run_id": run}
    if edit:
        edit(meta)
    directory = root / run / host / "dlrm" / config / "numa0"
    directory.mkdir(parents=True)
    (directory / "metadata.json").write_text(json.dumps(meta))
    shutil.copy(TREE / RUN / HOST / "dlrm" / config / "numa0" / "perf.csv", directory / "perf.csv")


def metered(evidence: dict, watts: float, clock: float | None = None, low: float | None = None) -> None:
    """EVIDENCE as a host with a meter and cpufreq would have recorded it."""
    evidence |= {"watts": watts, "joules": watts * evidence["seconds"], "energy_source": "rapl: package-0, dram"}
    evidence["energy_scope"] = "CPU packages and their DRAM (RAPL), not the whole system"
    if clock is not None:
        evidence |= {"frequency_mhz": clock, "frequency_min_mhz": low or clock, "frequency_max_mhz": clock}
    evidence["unavailable"] = {}


def search_level(meta: dict) -> list[dict]:
    """The search's capacity level's evidence, in its `level` and in its curve (the record holds both)."""
    level = meta["search"]["level"]
    same = [
        c for c in meta["search"]["curve"] if (c.get("level"), c.get("rate")) == (level.get("level"), level.get("rate"))
    ]
    return [level["evidence"], *(c["evidence"] for c in same)]


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("evidence") / "store.duckdb"
    with Store(db) as store:
        assert ingest(TREE, store).added == 3
    return db


# ----------------------------------------------------------------------------------------- the store
def test_ingest_stores_each_points_evidence_and_each_instances_verdict(fixture_store: Path) -> None:
    with Store.existing(fixture_store) as store:
        points = store.query("SELECT * FROM points ORDER BY config_id, concurrency, request_rate")
        instances = store.query("SELECT * FROM instances ORDER BY config_id").set_index("config_id")
    grid = points[points["config_id"] == GRID].set_index("concurrency")
    evidence = {e["level"]: e for e in metadata_of(GRID)["evidence"]}
    for level in (1, 2):
        for name in ("server_cores", "server_share", "client_cores", "client_share", "host_cores", "server_rss_mb"):
            assert grid.loc[level, name] == pytest.approx(evidence[level][name]), (level, name)
    # no meter, no cpufreq on the machine that wrote the fixture: NULL and why, never 0
    assert points["watts"].isna().all() and points["inferences_per_joule"].isna().all()
    assert points["joules_per_1000"].isna().all() and points["frequency_mhz"].isna().all()
    assert points["frequency_drop_percent"].isna().all()
    assert points["energy_source"].str.startswith(NO_RAPL).all()
    # the known-curve server's sleeping workers: latency, except at each config's top level, where
    # nothing above was measured (the range stopped it, not the budget)
    points["order"] = points["concurrency"].fillna(points["request_rate"])
    top = points.groupby("config_id")["order"].transform("max") == points["order"]
    assert set(points[top]["limited_by"]) == {"unknown"} and set(points[~top]["limited_by"]) == {"latency"}
    assert not points["throttled"].any()
    rates = points[points["config_id"] == OPEN]["request_rate"].tolist()
    assert rates == [8.0, 16.0, 32.0, 64.0] and points[points["config_id"] == OPEN]["server_cores"].notna().all()

    closed = instances.loc[CLOSED]
    search = metadata_of(CLOSED)["search"]
    assert (closed.limited_by, closed.limit_why, bool(closed.throttled)) == (
        "latency",
        search["verdict"]["why"],
        False,
    )
    assert closed.best_server_cores == search["level"]["evidence"]["server_cores"]
    assert closed.best_client_share == search["level"]["evidence"]["client_share"]
    assert closed.best_watts != closed.best_watts  # NULL
    # an invalid search has no best point, but its verdict and its capacity level's evidence are kept
    opened = instances.loc[OPEN]
    assert opened.best_throughput != opened.best_throughput and opened.limited_by == "latency"
    assert opened.best_server_cores == metadata_of(OPEN)["search"]["level"]["evidence"]["server_cores"]
    # a grid's verdict is its best point's (bench.records.verdict_of), worded by today's rule: its best
    # is its last level, with nothing above it and no CPU saturated, so the range stopped it
    assert instances.loc[GRID, "limited_by"] == "unknown"
    assert "no level above it was measured" in instances.loc[GRID, "limit_why"]
    assert instances.loc[GRID, "best_server_cores"] == evidence[2]["server_cores"]


def test_a_record_written_before_evidence_has_nulls_and_no_verdict(tmp_path: Path) -> None:
    before = REPO / "tests" / "fixtures" / "tree_open_loop"
    assert '"evidence"' not in next(before.rglob("metadata.json")).read_text()
    with Store(tmp_path / "s.duckdb") as store:
        assert ingest(before, store).added == 1
        for table, columns in (("instances", INSTANCE_EVIDENCE), ("points", POINT_EVIDENCE)):
            known = store.rows(f"SELECT {', '.join(f'count({c})' for c in columns)} FROM {table}")[0]
            assert set(known) == {0}, table


def a_v2_store(db: Path, rows_from: Path) -> None:
    """A store of schema 2 (as the collector before evidence made it) holding ROWS_FROM's rows."""
    with Store.existing(rows_from) as newer, duckdb.connect(str(db)) as conn:
        for statement in (*MIGRATIONS[0], *MIGRATIONS[1]):
            conn.execute(statement)
        conn.execute("CREATE TABLE recbench_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO recbench_schema VALUES (2)")
        for table in ("instances", "points"):
            kept = [c for c in TABLES[table] if c not in ADDED_IN[3][table]]
            frame = newer.query(f"SELECT {', '.join(kept)} FROM {table}")
            conn.register("old_rows", frame)
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM old_rows")
            conn.unregister("old_rows")


def test_a_store_of_schema_2_is_upgraded_by_a_write_and_keeps_its_rows(tmp_path: Path, fixture_store: Path) -> None:
    db = tmp_path / "v2.duckdb"
    a_v2_store(db, fixture_store)
    with pytest.raises(StoreError, match=f"schema version 2, this collector reads {len(MIGRATIONS)}"):
        Store.existing(db)
    with Store(db) as store:
        assert store.version == len(MIGRATIONS) == 3
        old = store.rows("SELECT config_id, best_throughput, limited_by, best_server_cores FROM instances")
        assert {row[2:] for row in old} == {(None, None)}  # rows stored before: NULL, not worked out again
        assert ingest(TREE, store).already_stored == 3
        tree = tmp_path / "tree"
        clone(tree, CLOSED, "kp-01", run="2026-12-03")
        assert ingest(tree, store).added == 1
        assert store.rows("SELECT limited_by FROM instances WHERE run_id = '2026-12-03'") == [("latency",)]


def test_an_export_of_an_older_collector_still_imports_beside_a_newer_one(tmp_path: Path, fixture_store: Path) -> None:
    share = tmp_path / "share"
    with Store.existing(fixture_store) as store:
        export_dataset(store, share)
    # rewrite this controller's files as a collector of schema 2 wrote them: without the evidence columns
    old = tmp_path / "old"
    for table, added in ADDED_IN[3].items():
        for part in (share / table).rglob("*.parquet"):
            target = old / part.relative_to(share)
            target.parent.mkdir(parents=True, exist_ok=True)
            duckdb.sql(
                f"COPY (SELECT * EXCLUDE ({', '.join(added)}) FROM read_parquet('{part}', hive_partitioning = false)) "
                f"TO '{target}' (FORMAT PARQUET)"
            )
    with Store(tmp_path / "a.duckdb") as store:
        assert import_dataset(store, old) == (3, 0)
        assert store.rows("SELECT count(limited_by), count(best_server_cores) FROM instances") == [(0, 0)]
        assert store.rows("SELECT count(server_cores) FROM points") == [(0,)]
    # one share holding an old shard and a new one (another run): both import, each as it was written
    newer = tmp_path / "newer"
    clone(newer, CLOSED, "kp-01", run="2026-12-03")
    with Store(tmp_path / "n.duckdb") as store:
        ingest(newer, store)
        export_dataset(store, old)
    with Store(tmp_path / "b.duckdb") as store:
        assert import_dataset(store, old) == (4, 0)
        by_run = dict(store.rows("SELECT run_id, count(limited_by) FROM instances GROUP BY run_id"))
        assert by_run == {RUN: 0, "2026-12-03": 1}
        assert store.rows("SELECT count(*) FROM points WHERE run_id = '2026-12-03' AND server_cores > 0") == [(3,)]


# ---------------------------------------------------------------------------------- verdicts, energy
def saturated_metered_grid(meta: dict) -> None:
    """The grid's level 2 on a host with RAPL and cpufreq whose server used 95 % of its CPUs and whose
    clock fell from 2,600 to 2,000 MHz during the level."""
    meta["host_facts"] = {"arch": "aarch64", "cores": 2, "numa_node_count": 1}
    at = next(e for e in meta["evidence"] if e["level"] == 2)
    at |= {"server_share": 0.95, "server_cores": 1.9}
    metered(at, 50.0, 2300.0, low=2000.0)
    at["frequency_max_mhz"] = 2600.0
    at["frequency_drop_percent"] = 100 * 600 / 2600


def test_a_saturated_throttled_server_with_a_meter_gives_its_verdict_and_efficiency(tmp_path: Path, capsys) -> None:
    tree = tmp_path / "tree"
    clone(tree, GRID, "kp-01", saturated_metered_grid)
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(tree, store)
        point = store.query("SELECT * FROM points WHERE concurrency = 2").iloc[0]
        instance = store.query("SELECT * FROM instances").iloc[0]
    assert point.watts == 50.0 and point.energy_source == "rapl: package-0, dram"
    assert point.inferences_per_joule == pytest.approx(95.2611 / 50)
    assert point.joules_per_1000 == pytest.approx(1000 * 50 / 95.2611)
    assert point.frequency_drop_percent == pytest.approx(100 * 600 / 2600)
    assert (point.limited_by, bool(point.throttled)) == ("server", True)
    assert (instance.limited_by, bool(instance.throttled)) == ("server", True)
    assert instance.limit_why == "server at 95 % of its 2 CPU(s)"
    assert instance.best_watts == 50.0 and instance.best_frequency_mhz == 2300.0
    assert instance.best_inferences_per_joule == pytest.approx(95.2611 / 50)
    # level 1 has no meter: unavailable, and its verdict looks at level 2 (the next level)
    with Store.existing(db) as store:
        assert store.rows("SELECT watts, limited_by FROM points WHERE concurrency = 1") == [(None, "server")]

    assert main(["best", "--db", str(db)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| dlrm"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # cores used, per core used, W, infer/J, limit
    assert cells[-5:] == ["1.90", "50.1", "50", "1.91", "server, throttled"]


def test_missing_figures_are_blank_or_unavailable_never_zero() -> None:
    assert watts_shown(None, "latency") == "unavailable" and watts_shown(float("nan"), None) is None
    assert watts_shown(0.0, "latency") == 0.0  # a meter that read 0 says 0; the ratios refuse it (below)
    assert limit_shown(None, True) == "" and limit_shown("client", False) == "client"
    frame = pd.DataFrame({"watts": [None, 12.5, None], "limited_by": ["latency", "server", None]})
    frame["throttled"] = [False, True, None]
    shown = with_evidence_shown(frame)
    assert shown["watts"].tolist() == ["unavailable", 12.5, None] and "throttled" not in shown
    assert shown["limited_by"].tolist() == ["latency", "server, throttled", ""]
    from collect.capacity import efficiency

    ratios = efficiency(pd.Series([100.0, 100.0]), pd.Series([0.0, 2.0]), pd.Series([0.0, None]))
    assert ratios["per_core_used"].isna().tolist() == [True, False] and ratios["inferences_per_joule"].isna().all()


def test_a_machine_adds_its_servers_cores_and_counts_the_hosts_watts_once() -> None:
    rows = pd.DataFrame(
        {
            "instance": ["numa0", "numa1"],
            "server_cores": [20.0, 22.0],
            "server_share": [0.8, 0.9],
            "client_share": [0.1, 0.3],
            "frequency_mhz": [2600.0, 2400.0],
            "watts": [300.0, 310.0],  # each instance's meter reads the whole host
            "limited_by": ["latency", "server"],
            "limit_why": ["a", "b"],
            "throttled": [False, True],
        }
    )
    seen = machine_evidence(rows)
    assert seen["cores_used"] == 42 and seen["watts"] == 310 and seen["client_share"] == 0.3
    assert seen["server_share"] == pytest.approx(0.85) and seen["frequency_mhz"] == 2500
    assert (seen["limited_by"], seen["throttled"], seen["limit_why"]) == ("server", True, "numa0: a; numa1: b")
    partial = machine_evidence(rows.assign(watts=[300.0, None], server_cores=[20.0, None]))
    assert partial["watts"] is None and partial["cores_used"] is None  # never a figure of half the machine


# ------------------------------------------------------------------------------- ARM against x86
def arch_fleet(root: Path) -> None:
    """The closed search on two Kunpeng hosts and one Xeon: kp-01 used fewer cores and fewer watts."""

    def host(arch: str, cores: float, watts: float | None) -> Callable[[dict], None]:
        def edit(meta: dict) -> None:
            meta["host_facts"] = {"arch": arch, "cores": 48, "numa_node_count": 2}
            for evidence in search_level(meta):
                evidence["server_cores"] = cores
                if watts is not None:
                    metered(evidence, watts)

        return edit

    clone(root, CLOSED, "kp-01", host("aarch64", 0.05, 100.0))
    clone(root, CLOSED, "kp-02", host("arm64", 0.08, None))  # the same architecture, spelled otherwise
    clone(root, CLOSED, "x86-01", host("x86_64", 0.0694, 150.0))
    clone(root, OPEN, "x86-01", host("x86_64", 0.04, 150.0))  # open loop: another class


def test_architectures_are_compared_per_core_used_and_per_watt_within_a_class(tmp_path: Path, capsys) -> None:
    arch_fleet(tmp_path / "tree")
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(tmp_path / "tree", store)
        compared = by_architecture(machine_capacity(store, RUN, {}, 1.0)).set_index(["load", "arch"])
    capacity = 191.338
    kunpeng, xeon = compared.loc[("closed", "aarch64")], compared.loc[("closed", "x86_64")]
    assert kunpeng.hosts == 2 and kunpeng.per_core_used == pytest.approx(capacity / 0.05)
    assert kunpeng.per_core_at == f"kp-01 ({CLOSED})"
    assert kunpeng.inferences_per_joule == pytest.approx(capacity / 100)
    assert kunpeng.per_core_vs_reference == pytest.approx(0.0694 / 0.05)
    assert kunpeng.per_joule_vs_reference == pytest.approx(1.5)
    assert xeon.per_core_vs_reference == 1.0
    # the open-loop search is invalid: no capacity, nothing to compare, never mixed into the closed class
    assert ("poisson", "x86_64") not in compared.index

    assert main(["efficiency", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "ratios to x86_64 in the same class" in out
    row = next(line for line in out.splitlines() if "| aarch64" in line)
    assert "3,826.8" in row and "1.39" in row and "1.91" in row and "1.50" in row
    assert main(["efficiency", "--db", str(db), "--p99-budget-ms", "10"]) == 0
    assert "| aarch64" in capsys.readouterr().out  # the searches keep their own budget


def test_capacities_measured_before_evidence_are_not_compared(tmp_path: Path, capsys) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        ingest(REPO / "tests" / "fixtures" / "tree_open_loop", store)
    assert main(["efficiency", "--db", str(tmp_path / "s.duckdb"), "--p99-budget-ms", "300"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "no valid capacity with evidence in this run"
    assert main(["best", "--db", str(tmp_path / "s.duckdb")]) == 0
    assert "cores used" not in capsys.readouterr().out  # no columns of blanks for a run before evidence


def test_the_report_shows_the_evidence_and_the_architectures(tmp_path: Path) -> None:
    arch_fleet(tmp_path / "tree")
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(tmp_path / "tree", store)
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "reports")]) == 0
    page = (tmp_path / "reports" / RUN / "report.html").read_text()
    assert "Architectures compared per core used and per watt" in page
    assert "<th>cores used (server)</th>" in page and "<th>inferences per joule</th>" in page
    assert '<td data-value="unavailable">unavailable</td>' in page  # kp-02 has no meter
    assert f"kp-01 ({CLOSED})" in page
    summary = (tmp_path / "reports" / RUN / "summary.md").read_text()
    assert "## Architectures per core used and per watt" in summary and "| aarch64" in summary


# -------------------------------------------------------------------------------------------- twins
FACTS = {"cpu_model": "HiSilicon Kunpeng 920", "sockets": 2, "cores": 96, "threads": 96, "kernel": "5.10.0"}


def twin(clock: float, share: float, scale: float = 1.0) -> Callable[[dict], None]:
    """A Kunpeng twin whose grid ran at CLOCK MHz with its server at SHARE of its CPUs, SCALE x as fast."""

    def edit(meta: dict) -> None:
        meta["host_facts"] = dict(FACTS, arch="aarch64")
        meta["started_at"], meta["finished_at"] = "1", "2"
        for evidence in meta["evidence"]:
            evidence |= {"server_share": share, "frequency_mhz": clock}

    return edit


def test_a_stray_twin_is_explained_by_its_clock_and_its_servers_cpu_share(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for name in ("kp-01", "kp-02", "kp-03"):
        clone(tree, GRID, name, twin(2600.0, 0.92))
    clone(tree, GRID, "kp-04", twin(2100.0, 0.55))
    clone(tree, GRID, "kp-05", twin(2600.0, 0.92))
    with Store(tmp_path / "s.duckdb") as store:
        ingest(tree, store)
        # kp-04 and kp-05 measured slower (their perf.csv scaled): one with a reason in its evidence
        for name, factor in (("kp-04", 0.6), ("kp-05", 0.6)):
            store.execute("UPDATE instances SET best_throughput = best_throughput * ? WHERE host = ?", [factor, name])
        table = twins(store, RUN, load_thresholds()).set_index("host")
    assert table.loc["kp-04", "verdict"] == "strays"
    assert table.loc["kp-04", "why"] == "ran at 2,100 MHz vs twins' 2,600; server at 55 % of its CPUs vs twins' 92 %"
    assert table.loc["kp-05", "why"] == "no configuration difference found"  # alike in all it recorded
    assert table.loc["kp-01", "frequency_mhz"] == 2600.0 and table.loc["kp-01", "verdict"] == "ok"
