"""The results store: one DuckDB file (results/recbench.duckdb by default), columnar, schema versioned.

Two tables, `instances` (one row per instance result: its key, status, knobs and metadata, its best
point and that point's verdict) and `points` (one row per measured level, with what the host did while
it ran: schema 3), keyed by run id, host, model, config id and instance. Stored rows never change: an
ingest adds only instances the store does not hold yet, and all of one ingest is one transaction, so a
crash mid-ingest leaves the store as it was before. The key is not a PRIMARY KEY
on purpose: DuckDB keeps such indexes in memory (a year of 100 hosts is 3.65 M instances, 36.5 M
points); uniqueness comes from the ingest's anti-join, and DuckDB lets one process write a file at a time.

Aggregations run in the engine (collect.queries); pandas receives only what a table or a plot shows.
A store written by the SQLite collector is migrated before it is opened (collect.legacy.migrate_if_legacy:
a step of the commands, never of opening: this module does not import collect.legacy).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from bench.records import STATUSES
from collect.best import POINT_FIELDS, best_rows
from collect.errors import FilesystemError, NoStore, StoreError, clip, filesystem_error

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
    # schema 2: how the load arrived (closed, poisson) and what sent it (perf_analyzer, mlperf);
    # NULL in rows stored before: closed loops driven by perf_analyzer
    "load": "VARCHAR",
    "client": "VARCHAR",
}
POINT_COLUMNS = {
    **{name: "VARCHAR NOT NULL" for name in KEY},
    "concurrency": "INTEGER",  # schema 1: NOT NULL; an open-loop point has a request rate instead
    "request_rate": "DOUBLE",
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
    "best_request_rate": "DOUBLE",
}
# Schema 3: what the host did while each point was measured (bench.records.Evidence, read at ingest by
# collect.results), and what limited it (bench.records.limit_of: its evidence and the next level's).
# NULL in rows whose record was written before evidence existed: never a guess. `limited_by`, not
# `limit`: LIMIT is an SQL keyword, and a column every query had to quote would trip every reader.
POINT_EVIDENCE = {
    "server_cores": "DOUBLE",
    "server_share": "DOUBLE",
    "client_cores": "DOUBLE",
    "client_share": "DOUBLE",
    "host_cores": "DOUBLE",
    "frequency_mhz": "DOUBLE",
    "frequency_drop_percent": "DOUBLE",
    "watts": "DOUBLE",
    "joules_per_1000": "DOUBLE",  # 1000 x watts / throughput
    "inferences_per_joule": "DOUBLE",  # throughput / watts
    "server_rss_mb": "DOUBLE",
    "energy_source": "VARCHAR",  # the meter, or "unavailable: <why>"
    "limited_by": "VARCHAR",
    "throttled": "BOOLEAN",
}
# Schema 3, per instance: the verdict of its answer (its best point; a search's capacity level, valid or
# not) and that level's evidence, computed at ingest and exported with the instance.
INSTANCE_EVIDENCE = {
    "limited_by": "VARCHAR",
    "limit_why": "VARCHAR",
    "throttled": "BOOLEAN",
    "best_server_cores": "DOUBLE",
    "best_server_share": "DOUBLE",
    "best_client_share": "DOUBLE",
    "best_frequency_mhz": "DOUBLE",
    "best_watts": "DOUBLE",
    "best_inferences_per_joule": "DOUBLE",
}
TABLES = {
    "instances": INSTANCE_COLUMNS | BEST_COLUMNS | INSTANCE_EVIDENCE,
    "points": POINT_COLUMNS | POINT_EVIDENCE,
}
# Columns each schema added (rows are written by name, so their place in a table does not matter).
ADDED_IN = {
    2: {"instances": ["load", "client", "best_request_rate"], "points": ["request_rate"]},
    3: {"instances": list(INSTANCE_EVIDENCE), "points": list(POINT_EVIDENCE)},
}
# Every column added after schema 1: a relation from before (an older export, a frame built by an older
# tool) may lack any of them, and its rows still go in with NULL there.
ADDED = {c for added in ADDED_IN.values() for table in added.values() for c in table}
# What a table held before (a SQLite store of that time, a generator writing schema-1 rows).
V1_COLUMNS = {table: [c for c in columns if c not in ADDED] for table, columns in TABLES.items()}


def _create_v1(table: str) -> str:
    columns = ", ".join(
        f"{name} {TABLES[table][name]}" + (" NOT NULL" if (table, name) == ("points", "concurrency") else "")
        for name in V1_COLUMNS[table]
    )
    return f"CREATE TABLE {table} ({columns})"


def _additions(version: int) -> list[str]:
    return [f"ALTER TABLE {t} ADD COLUMN {c} {TABLES[t][c]}" for t, added in ADDED_IN[version].items() for c in added]


# Each migration brings the schema from its index to index + 1. Append, never edit.
MIGRATIONS = [
    [_create_v1("instances"), _create_v1("points")],
    ["ALTER TABLE points ALTER COLUMN concurrency DROP NOT NULL", *_additions(2)],
    _additions(3),
]


DAMAGE = (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException, duckdb.FatalException)
READ_ONLY_REFUSAL = "read-only mode"


class Store:
    """An open store. `Store(path)` creates it if needed (for commands that write);
    `Store.existing(path)` refuses a path that holds no store and opens it read-only (for commands
    that only read: a store on a read-only file or directory is readable, and a write is refused).

    Opening never migrates a SQLite store of earlier versions: that is a step before opening
    (collect.legacy.migrate_if_legacy). Every query goes through the methods here, which turn the
    engine's errors about the file (damaged, truncated, locked, read-only) into a one-line StoreError."""

    def __init__(self, path: Path = DEFAULT_DB, *, create: bool = True, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._reading_other_files = False
        if self.path.exists() and not self.path.is_file():
            raise FilesystemError(f"{self.path}: not a file (--db names the store file)")
        if not self.path.is_file():
            if not create or read_only:
                raise NoStore(f"{self.path}: no store here; `python -m collect ingest` creates one")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise filesystem_error(err) from None
        try:
            self.db = duckdb.connect(str(self.path), read_only=read_only, config={"memory_limit": MEMORY_LIMIT})
            # no progress bar of DuckDB's own: it would write into the commands' standard output
            self.db.execute("SET enable_progress_bar = false")
        except duckdb.Error as err:
            raise StoreError(f"{self.path}: {_first_line(err)}") from None
        try:
            with self.guarded():
                self.migrate()
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def existing(cls, path: Path = DEFAULT_DB) -> Store:
        """The store at PATH, read-only; NoStore if there is none."""
        return cls(path, create=False, read_only=True)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: object, err: object, trace: object) -> None:
        self.close()
        if isinstance(err, duckdb.Error) and self._is_about_the_file(err) and not self._reading_other_files:
            raise self._error_of(err) from None

    def _is_about_the_file(self, err: duckdb.Error) -> bool:
        return isinstance(err, DAMAGE) or READ_ONLY_REFUSAL in str(err)

    def _error_of(self, err: duckdb.Error) -> StoreError:
        if READ_ONLY_REFUSAL in str(err):
            return StoreError(f"{self.path}: opened read-only, this command cannot write to it")
        return StoreError(clip(f"{self.path}: damaged or unreadable store: {_first_line(err)}"))

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """Engine errors about the file inside (damage, truncation, read-only) as a one-line StoreError;
        any other engine error (a bug in a query) goes on as it is."""
        try:
            yield
        except duckdb.Error as err:
            if self._is_about_the_file(err) and not self._reading_other_files:
                raise self._error_of(err) from None
            raise

    @contextmanager
    def reading_other_files(self) -> Iterator[None]:
        """Inside, queries read files besides the store (a Parquet dataset): an engine error is about
        them and goes on as it is, for the caller to name the file."""
        self._reading_other_files = True
        try:
            yield
        finally:
            self._reading_other_files = False

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only, this command cannot write to it")

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
        if current < len(MIGRATIONS) and self.read_only:
            raise StoreError(
                f"{self.path}: schema version {current}, this collector reads {len(MIGRATIONS)}; "
                "a command that writes (ingest, import) upgrades it"
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
        return int(self.scalar(f"SELECT count(*) FROM {table}"))

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """The answer of one query as a pandas frame (small by construction: the callers aggregate)."""
        with self.guarded():
            return self.db.execute(sql, params or []).df()

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        """The answer of one query as a list of tuples."""
        with self.guarded():
            return self.db.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list | None = None) -> object:
        """The first column of the first row of one query's answer (None when there is no row)."""
        with self.guarded():
            row = self.db.execute(sql, params or []).fetchone()
        return row[0] if row else None

    def arrays(self, sql: str, params: list | None = None) -> dict[str, np.ndarray]:
        """The answer of one query as one NumPy array per column (for answers too long for a frame)."""
        with self.guarded():
            columns = self.db.execute(sql, params or []).fetchnumpy()
        return {name: np.asarray(values) for name, values in columns.items()}

    def execute(self, sql: str, params: list | None = None) -> None:
        """Run one statement whose answer is not wanted (temporary tables of a query, an INSERT)."""
        with self.guarded():
            self.db.execute(sql, params or [])

    def execute_many(self, sql: str, rows: list[list]) -> None:
        with self.guarded():
            self.db.executemany(sql, rows)

    @contextmanager
    def registered(self, name: str, frame: pd.DataFrame | pa.Table) -> Iterator[str]:
        """FRAME visible to queries as the relation NAME for the duration of the block (yields NAME)."""
        with self.guarded():
            self.db.register(name, frame)
        try:
            yield name
        finally:
            with suppress(duckdb.Error):  # an aborted transaction (the error that aborted it is on its way up)
                self.db.unregister(name)

    def add_frames(self, instances: pd.DataFrame | pa.Table, points: pd.DataFrame | pa.Table) -> int:
        """Store the instances (and their points) of these tables that are not stored yet. INSTANCES
        may carry the best-point columns already (the ingest computes them); else they are computed."""
        self._require_writable()
        if len(instances) == 0:
            return 0
        names = instances.column_names if isinstance(instances, pa.Table) else list(instances.columns)
        with self.registered("staged_instances", instances), self.registered("staged_points", points), self.guarded():
            return self.add_staged("staged_instances", "staged_points", best_included=set(BEST_COLUMNS) <= set(names))

    def add_staged(self, instances: str, points: str, best_included: bool = False) -> int:
        """Store the rows of two relations (SQL table expressions with the tables' columns) whose
        instance is not stored yet. Runs inside the caller's transaction (see `transaction`).
        Returns how many instances were new."""
        keys = ", ".join(KEY)
        columns = [*INSTANCE_COLUMNS, *INSTANCE_EVIDENCE, *(BEST_COLUMNS if best_included else [])]
        # Only the runs being added can hold a duplicate: the run filter lets DuckDB skip the rest.
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT s.* FROM (SELECT {self._columns_of(instances, columns)} "
            f"FROM {instances}) s ANTI JOIN (SELECT {keys} FROM instances "
            f"WHERE run_id IN (SELECT DISTINCT run_id FROM {instances})) i USING ({keys})"
        )
        added = self.db.execute("SELECT count(*) FROM fresh").fetchone()[0]
        new_points = (
            f"SELECT p.* FROM (SELECT {self._columns_of(points, [*POINT_COLUMNS, *POINT_EVIDENCE])} FROM {points}) p "
            f"SEMI JOIN fresh USING ({keys})"
        )
        if not best_included:  # the one rule, bench.records.best_point, in Python (collect.best)
            self.db.execute(f"CREATE OR REPLACE TEMP TABLE fresh_points AS {new_points}")
            best = best_rows(
                self.db.execute(f"SELECT {keys}, metadata FROM fresh").df(),
                self.db.execute(f"SELECT {keys}, {', '.join(POINT_FIELDS)} FROM fresh_points").df(),
                KEY,
            )
            with self.registered("fresh_best", best):
                self.db.execute(
                    f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT f.*, "
                    f"{', '.join(f'b.{c}' for c in BEST_COLUMNS)} FROM fresh f LEFT JOIN fresh_best b USING ({keys})"
                )
            new_points = "SELECT * FROM fresh_points"
        self.db.execute("INSERT INTO instances BY NAME SELECT * FROM fresh")
        self.db.execute(f"INSERT INTO points BY NAME {new_points}")
        self.db.execute("DROP TABLE IF EXISTS fresh_points")
        self.db.execute("DROP TABLE fresh")
        return int(added)

    def _columns_of(self, relation: str, columns: list[str]) -> str:
        """A select list of COLUMNS from RELATION, NULL (typed) for those a later schema added that it
        lacks: rows from before (an older export, a frame built by an older tool) still go in."""
        present = {row[0] for row in self.db.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
        kinds = TABLES["instances"] | TABLES["points"]
        return ", ".join(
            name if name in present or name not in ADDED else f"CAST(NULL AS {kinds[name].split()[0]}) AS {name}"
            for name in columns
        )

    def fill_best(self, runs: list[str] | None = None, runs_at_once: int = 32) -> None:
        """Compute the best point (collect.best) of the instances stored without it, of RUNS (None:
        every run). Only for a store being built from rows (a migration, a benchmark's generator):
        ingest and import store it with the instance, whose row then never changes."""
        if runs is None:
            runs = [r for (r,) in self.rows("SELECT DISTINCT run_id FROM instances WHERE best_throughput IS NULL")]
        keys = ", ".join(KEY)
        assignments = ", ".join(f"{c} = b.{c}" for c in BEST_COLUMNS)
        matches = " AND ".join(f"i.{k} = b.{k}" for k in KEY)
        for start in range(0, len(runs), runs_at_once):
            some = runs[start : start + runs_at_once]
            marks = ", ".join("?" for _ in some)
            best = best_rows(
                self.query(
                    f"SELECT {keys}, metadata FROM instances WHERE run_id IN ({marks}) AND best_throughput IS NULL",
                    some,
                ),
                self.query(f"SELECT {keys}, {', '.join(POINT_FIELDS)} FROM points WHERE run_id IN ({marks})", some),
                KEY,
            )
            with self.registered("filled_best", best):
                self.execute(f"UPDATE instances i SET {assignments} FROM filled_best b WHERE {matches}")

    def transaction(self) -> _Transaction:
        """`with store.transaction():` around a write; a store opened read-only refuses it in one line."""
        self._require_writable()
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
            with suppress(duckdb.Error):  # the connection is unusable: what made it so is on its way up
                self.db.rollback()


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
