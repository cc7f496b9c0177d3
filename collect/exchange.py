"""Moving results between stores and out to other tools.

`export_points` writes the points of a run (or of every run), with their instance's knobs and status,
as one CSV or Parquet file. `export_dataset` writes a store, or some of its runs, as a Parquet dataset
partitioned by run, `<dir>/instances/run_id=<run>/*.parquet` and `<dir>/points/run_id=<run>/...`: the
exchange format between controllers. `import_dataset` reads such a dataset into a store, adding only the
instances that store does not hold yet, in one transaction: importing twice changes nothing, and
several controllers' exports merge with nothing lost.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

import duckdb

from collect import names
from collect.errors import InputError, clip
from collect.queries import KNOBS, runs_filter
from collect.store import INSTANCE_COLUMNS, INSTANCE_EVIDENCE, KEY, POINT_COLUMNS, POINT_EVIDENCE, Store

# The best point is computed again on import (the one rule); the evidence and verdict travel as stored.
DATASET_TABLES = {"instances": INSTANCE_COLUMNS | INSTANCE_EVIDENCE, "points": POINT_COLUMNS | POINT_EVIDENCE}


class ExchangeError(InputError):
    """A dataset or an export target cannot be used; the message names it. Nothing is stored."""


def export_points(store: Store, output: Path, runs: list[str] | None = None) -> int:
    """The points of RUNS (None: every run) with their knobs and status, into OUTPUT (.csv or .parquet),
    written beside it and renamed, so a reader never sees half a file. Returns the number of points."""
    options = {".csv": "FORMAT CSV, HEADER", ".parquet": "FORMAT PARQUET"}.get(output.suffix.lower())
    if options is None:
        raise ExchangeError(
            f"{output}: the file name must end in .csv or .parquet, or name a directory for a Parquet dataset"
        )
    where, params = runs_filter(runs)
    knobs = ", ".join(f"i.{knob}" for knob in KNOBS)
    query = (
        f"SELECT p.*, i.status, {knobs} FROM (SELECT * FROM points WHERE {where}) p "
        f"JOIN (SELECT * FROM instances WHERE {where}) i USING (run_id, host, model, config_id, instance) "
        "ORDER BY run_id, host, model, config_id, instance, concurrency"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.partial")
    count = store.scalar(f"COPY ({query}) TO '{_quoted(staging)}' ({options})", params * 2)
    staging.replace(output)
    return int(count)


def origin_of(store: Store) -> str:
    """A name for the store a dataset's files came from: its controller and its path."""
    digest = hashlib.sha256(str(store.path.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def export_dataset(store: Store, directory: Path, runs: list[str] | None = None) -> dict[str, int]:
    """RUNS (None: every run) as a Parquet dataset partitioned by run under DIRECTORY. Each file is named
    after the store it came from: exporting again replaces this store's files (rows never change, so
    they can only have grown) and leaves the files other controllers put there, so several
    controllers can share one directory. Returns the rows written per table."""
    where, params = runs_filter(runs)
    origin = origin_of(store)
    staging = directory.with_name(f".{directory.name}.{origin}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    written = {}
    try:
        for table, columns in DATASET_TABLES.items():
            (staging / table).mkdir(parents=True)
            written[table] = int(
                store.scalar(
                    f"COPY (SELECT {', '.join(columns)} FROM {table} WHERE {where}) "
                    f"TO '{_quoted(staging / table)}' (FORMAT PARQUET, PARTITION_BY (run_id), "
                    f"FILENAME_PATTERN '{origin}-{{i}}', OVERWRITE_OR_IGNORE)",
                    params,
                )
            )
        for table in DATASET_TABLES:
            for partition in sorted((staging / table).iterdir()):
                final = directory / table / partition.name
                final.mkdir(parents=True, exist_ok=True)
                fresh = {part.name for part in partition.iterdir()}
                for part in sorted(partition.iterdir()):
                    part.replace(final / part.name)  # atomic: a reader sees the old file or the new
                for stale in final.glob(f"{origin}-*"):
                    if stale.name not in fresh:
                        stale.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _dataset_relation(directory: Path, table: str) -> str:
    files = directory / table / "run_id=*" / "*.parquet"
    # Run ids stay text: without this DuckDB would read "20261126T101500Z" or "2026-11-01" as other types.
    # By name: a share holds files of older collectors (fewer columns) beside newer ones.
    return (
        f"read_parquet('{_quoted(files)}', hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
    )


def import_dataset(store: Store, directory: Path) -> tuple[int, int]:
    """Add the dataset under DIRECTORY to STORE, in one transaction. Returns (new, already stored)."""
    for table in DATASET_TABLES:
        if not any((directory / table).glob("run_id=*/*.parquet")):
            raise ExchangeError(f"{directory}: not a recbench dataset (no {table}/run_id=*/*.parquet)")
    instances, points = (_dataset_relation(directory, table) for table in DATASET_TABLES)
    try:
        with store.reading_other_files():
            offered = store.scalar(f"SELECT count(*) FROM {instances}")
            _check_names(store, directory, instances)
            with store.transaction():
                added = store.add_staged(instances, points)
    except duckdb.Error as err:  # a damaged or foreign Parquet file: say which, store nothing
        raise ExchangeError(clip(f"{directory}: {str(err).strip().splitlines()[0]}")) from None
    return added, int(offered) - added


def _check_names(store: Store, directory: Path, instances: str) -> None:
    """Every key of the dataset is a valid name (run ids become report directories): the first one
    that is not is named, before anything is stored."""
    for column in KEY:
        kind = names.KEY_KINDS[column]
        for (value,) in store.rows(f"SELECT DISTINCT {column} FROM {instances} ORDER BY 1"):
            if not names.is_valid(kind, value):
                raise ExchangeError(clip(f"{directory}: {names.refusal(kind, value)}; nothing imported"))


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
