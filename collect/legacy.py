"""Stores written by the SQLite collector (schema `user_version` 1) move to DuckDB on first use.

A step before opening: the commands call `migrate_if_legacy(path)` and open the store it returns
(collect.store never imports this module; opening a store never migrates one).

The new file is built beside the old one under a `.partial` name, every instance and point copied in
one transaction and counted against the old file, and only then renamed into place: an interrupted
migration leaves the old store as it was and no half-built new one. The old file is never changed or
removed; delete it yourself once you trust the new one.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from collect.progress import progress
from collect.store import INSTANCE_COLUMNS, POINT_COLUMNS, V1_COLUMNS, Store, StoreError

SQLITE_MAGIC = b"SQLite format 3\x00"
LEGACY_VERSION = 1
TABLES_OF = ("instances", "points")
CHUNK = 200_000  # rows per hand-over: the copy's memory stays flat whatever the store's size


class MigrationError(StoreError):
    """The old store cannot be migrated; the message says why. The old file is untouched."""


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def migrate_if_legacy(path: Path, say: Callable[[str], None] | None = None) -> Path:
    """The DuckDB store to open for PATH: PATH itself, or the store migrated from the SQLite file that
    PATH names (x.sqlite -> x.duckdb), or from the SQLite file beside a DuckDB path that does not
    exist yet (results/recbench.duckdb <- results/recbench.sqlite, the old default)."""
    if is_sqlite(path):
        target = path.with_suffix(".duckdb")
        if not target.exists():
            migrate(path, target, say)
        return target
    old = path.with_suffix(".sqlite")
    if not path.exists() and path.suffix == ".duckdb" and is_sqlite(old):
        migrate(old, path, say)
    return path


def _say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def migrate(source: Path, target: Path, say: Callable[[str], None] | None = None) -> tuple[int, int]:
    """Copy the SQLite store SOURCE into a new DuckDB store TARGET. Returns (instances, points)."""
    say = say or _say_on_stderr
    if target.exists():
        raise MigrationError(f"{target}: exists already; move it away to migrate {source} again")
    old = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        version = old.execute("PRAGMA user_version").fetchone()[0]
        if version != LEGACY_VERSION:
            raise MigrationError(f"{source}: SQLite store schema {version}, this collector migrates {LEGACY_VERSION}")
        expected = {table: old.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES_OF}
        say(
            f"store: migrating {source} ({expected['instances']:,} instances, "
            f"{expected['points']:,} points) to {target}"
        )
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        try:
            total = sum(expected.values())
            with Store(partial) as store, store.transaction(), progress("migrate: rows copied") as update:
                done = 0
                for table in ("instances", "points"):
                    columns = [c for c in V1_COLUMNS[table] if c in INSTANCE_COLUMNS or c in POINT_COLUMNS]
                    cursor = old.execute(f"SELECT {', '.join(columns)} FROM {table}")
                    while rows := cursor.fetchmany(CHUNK):
                        _append(store, table, list(columns), rows)
                        done += len(rows)
                        update(done, total)
                store.fill_best()
                copied = {table: store.count(table) for table in TABLES_OF}
                if copied != expected:
                    raise MigrationError(f"{source}: copied {copied}, expected {expected}; nothing migrated")
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        say(f"store: migrated {copied['instances']:,} instances and {copied['points']:,} points; {source} is kept")
        return copied["instances"], copied["points"]
    except sqlite3.DatabaseError as err:
        raise MigrationError(f"{source}: {err}") from None
    finally:
        old.close()


def _append(store: Store, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Rows go in as one Arrow table, not one INSERT each (DuckDB's bulk path)."""
    chunk = pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})
    names = ", ".join(columns)
    with store.registered("legacy_chunk", chunk):
        store.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM legacy_chunk")
