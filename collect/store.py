"""The results store: one DuckDB file (results/recbench.duckdb by default), columnar, schema versioned.

Two tables, `instances` (one row per instance result: its key, status, knobs and metadata) and `points`
(one row per measured concurrency level), keyed by run id, host, model, config id and instance. Stored
rows never change: an ingest adds only instances the store does not hold yet, and all of one ingest is
one transaction, so a crash mid-ingest leaves the store as it was before. The key is not a PRIMARY KEY
on purpose: DuckDB keeps such indexes in memory (a year of 100 hosts is 3.65 M instances, 36.5 M
points); uniqueness comes from the ingest's anti-join, and DuckDB lets one process write a file at a time.

Aggregations run in the engine (collect.queries); pandas receives only what a table or a plot shows.
A store written by the SQLite collector is migrated on first use (collect.legacy).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from bench.layout import STATUSES

DEFAULT_DB = Path("results") / "recbench.duckdb"
# Enough for the year-of-100-hosts queries; DuckDB spills to disk beyond it rather than growing.
MEMORY_LIMIT = "1GB"

KEY = ["run_id", "host", "model", "config_id", "instance"]
# The config's knobs each instance row carries (the rest of the config stays in its metadata).
KNOBS = ["mode", "batch_size", "concurrency_range", "intra", "inter", "xla", "onednn"]
INSTANCE_COLUMNS = {
    "run_id": "VARCHAR NOT NULL",
    "host": "VARCHAR NOT NULL",
    "model": "VARCHAR NOT NULL",
    "config_id": "VARCHAR NOT NULL",
    "instance": "VARCHAR NOT NULL",
    "status": f"VARCHAR NOT NULL CHECK (status IN ({', '.join(repr(s) for s in STATUSES)}))",
    "mode": "VARCHAR",
    "batch_size": "INTEGER",
    "concurrency_range": "VARCHAR",
    "intra": "INTEGER",
    "inter": "INTEGER",
    "xla": "INTEGER",
    "onednn": "INTEGER",
    "levels_failed": "VARCHAR NOT NULL",
    "metadata": "VARCHAR NOT NULL",
    "source": "VARCHAR NOT NULL",
    "sha256": "VARCHAR NOT NULL",
    "ingested_at": "VARCHAR NOT NULL",
}
POINT_COLUMNS = {
    **{name: "VARCHAR NOT NULL" for name in KEY},
    "concurrency": "INTEGER NOT NULL",
    "throughput": "DOUBLE NOT NULL",
    "p50_us": "DOUBLE NOT NULL",
    "p90_us": "DOUBLE NOT NULL",
    "p95_us": "DOUBLE NOT NULL",
    "p99_us": "DOUBLE NOT NULL",
    "avg_latency_us": "DOUBLE",
    "client_send_us": "DOUBLE",
    "client_recv_us": "DOUBLE",
}
# Each instance's best point, computed from its points when it is stored (stored rows never change, so
# neither does this): history over a year reads 3.65 M instance rows instead of 36.5 M points.
BEST_COLUMNS = {
    "best_throughput": "DOUBLE",
    "best_concurrency": "INTEGER",
    "best_p50_us": "DOUBLE",
    "best_p90_us": "DOUBLE",
    "best_p99_us": "DOUBLE",
}
TABLES = {"instances": INSTANCE_COLUMNS | BEST_COLUMNS, "points": POINT_COLUMNS}
BEST_OF_POINTS = (
    "max(throughput) AS best_throughput, arg_max(concurrency, throughput) AS best_concurrency, "
    "arg_max(p50_us, throughput) AS best_p50_us, arg_max(p90_us, throughput) AS best_p90_us, "
    "arg_max(p99_us, throughput) AS best_p99_us"
)


def capacity_best_points(points: str, instances: str) -> str:
    """The POINTS a best point may come from: all of a grid instance's; of a capacity search's, only its
    capacity's level, and none when the search is invalid (as collect.ingest.best_point says)."""
    keys = ", ".join(KEY)
    search = (
        f"SELECT {keys}, json_extract_string(metadata, '$.search.kind') AS kind, "
        "json_extract_string(metadata, '$.search.valid') AS valid, "
        f"TRY_CAST(json_extract_string(metadata, '$.search.level.level') AS INTEGER) AS level FROM {instances}"
    )
    return (
        f"SELECT p.* FROM {points} p JOIN ({search}) s USING ({keys}) "
        "WHERE s.kind IS DISTINCT FROM 'capacity' OR (s.valid = 'true' AND p.concurrency = s.level)"
    )


def _create(table: str) -> str:
    columns = ", ".join(f"{name} {kind}" for name, kind in TABLES[table].items())
    return f"CREATE TABLE {table} ({columns})"


# Each migration brings the schema from its index to index + 1. Append, never edit.
MIGRATIONS = [
    [_create("instances"), _create("points")],
]


class StoreError(RuntimeError):
    """The store cannot be used (missing, newer schema, locked, corrupt); the message says which."""


class Store:
    """An open store. `Store(path)` creates it if needed (for commands that write);
    `Store.existing(path)` refuses a path that holds no store (for commands that only read)."""

    def __init__(self, path: Path = DEFAULT_DB, *, create: bool = True) -> None:
        from collect.legacy import migrate_if_legacy

        self.path = migrate_if_legacy(Path(path))
        if not self.path.is_file():
            if not create:
                raise StoreError(f"{self.path}: no store here; `python -m collect ingest` creates one")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = duckdb.connect(str(self.path), config={"memory_limit": MEMORY_LIMIT})
            # no progress bar of DuckDB's own: it would write into the commands' standard output
            self.db.execute("SET enable_progress_bar = false")
        except duckdb.Error as err:
            raise StoreError(f"{self.path}: {_first_line(err)}") from None
        try:
            self.migrate()
        except duckdb.Error as err:
            self.db.close()
            raise StoreError(f"{self.path}: {_first_line(err)}") from None

    @classmethod
    def existing(cls, path: Path = DEFAULT_DB) -> Store:
        return cls(path, create=False)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        found = self.db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'recbench_schema'"
        ).fetchone()
        if not found or not found[0]:
            return 0
        row = self.db.execute("SELECT version FROM recbench_schema").fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this collector "
                f"knows ({len(MIGRATIONS)}); upgrade recbench"
            )
        for number in range(current, len(MIGRATIONS)):
            self.db.begin()
            for statement in MIGRATIONS[number]:
                self.db.execute(statement)
            self.db.execute("CREATE TABLE IF NOT EXISTS recbench_schema (version INTEGER NOT NULL)")
            self.db.execute("DELETE FROM recbench_schema")
            self.db.execute("INSERT INTO recbench_schema VALUES (?)", [number + 1])
            self.db.commit()

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(table)
        return self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """The answer of one query as a pandas frame (small by construction: the callers aggregate)."""
        return self.db.execute(sql, params or []).df()

    def add_frames(self, instances: pd.DataFrame | pa.Table, points: pd.DataFrame | pa.Table) -> int:
        """Store the instances (and their points) of these tables that are not stored yet. INSTANCES
        may carry the best-point columns already (the ingest computes them); else they are computed."""
        if len(instances) == 0:
            return 0
        self.db.register("staged_instances", instances)
        self.db.register("staged_points", points)
        try:
            names = instances.column_names if isinstance(instances, pa.Table) else list(instances.columns)
            return self.add_staged("staged_instances", "staged_points", best_included=set(BEST_COLUMNS) <= set(names))
        finally:
            self.db.unregister("staged_instances")
            self.db.unregister("staged_points")

    def add_staged(self, instances: str, points: str, best_included: bool = False) -> int:
        """Store the rows of two relations (SQL table expressions with the tables' columns) whose
        instance is not stored yet. Runs inside the caller's transaction (see `transaction`).
        Returns how many instances were new."""
        keys = ", ".join(KEY)
        columns = list(INSTANCE_COLUMNS) + (list(BEST_COLUMNS) if best_included else [])
        # Only the runs being added can hold a duplicate: the run filter lets DuckDB skip the rest.
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT s.* FROM (SELECT {', '.join(columns)} "
            f"FROM {instances}) s ANTI JOIN (SELECT {keys} FROM instances "
            f"WHERE run_id IN (SELECT DISTINCT run_id FROM {instances})) i USING ({keys})"
        )
        added = self.db.execute("SELECT count(*) FROM fresh").fetchone()[0]
        new_points = (
            f"SELECT p.* FROM (SELECT {', '.join(POINT_COLUMNS)} FROM {points}) p SEMI JOIN fresh USING ({keys})"
        )
        if best_included:
            self.db.execute("INSERT INTO instances SELECT * FROM fresh")
            self.db.execute(f"INSERT INTO points {new_points}")
        else:
            self.db.execute(f"CREATE OR REPLACE TEMP TABLE fresh_points AS {new_points}")
            self.db.execute(
                f"INSERT INTO instances SELECT f.*, {', '.join(f'b.{c}' for c in BEST_COLUMNS)} FROM fresh f "
                f"LEFT JOIN (SELECT {keys}, {BEST_OF_POINTS} FROM ({capacity_best_points('fresh_points', 'fresh')}) "
                f"GROUP BY {keys}) b USING ({keys})"
            )
            self.db.execute("INSERT INTO points SELECT * FROM fresh_points")
            self.db.execute("DROP TABLE fresh_points")
        self.db.execute("DROP TABLE fresh")
        return int(added)

    def fill_best(self, runs: list[str] | None = None) -> None:
        """Compute the best point of instances stored without it (a store copied in by rows), of RUNS
        (None: every run)."""
        keys = ", ".join(KEY)
        assignments = ", ".join(f"{c} = b.{c}" for c in BEST_COLUMNS)
        matches = " AND ".join(f"i.{k} = b.{k}" for k in KEY)
        where = f"run_id IN ({', '.join('?' for _ in runs)})" if runs else "TRUE"
        self.db.execute(
            f"UPDATE instances i SET {assignments} FROM "
            f"(SELECT {keys}, {BEST_OF_POINTS} FROM points WHERE {where} GROUP BY {keys}) b "
            f"WHERE {matches} AND i.best_throughput IS NULL",
            list(runs or []),
        )

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    """`with store.transaction():` commits everything inside, or nothing if it raises."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.begin()

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.db.commit()
        else:
            self.db.rollback()


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
