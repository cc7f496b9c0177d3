"""The results store: one SQLite file (results/recbench.sqlite by default), schema versioned.

Rows are keyed by run id, host, model, config id, instance and concurrency. Stored rows are never
changed: ingesting a result that is already there is a no-op, so ingesting a tree twice leaves the
store as it was. Every ingest is one transaction: a crash loses nothing that was stored before.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from collect.results import InstanceResult

DEFAULT_DB = Path("results") / "recbench.sqlite"

# Each migration brings the schema from its index to index + 1. Append, never edit.
MIGRATIONS = [
    """
    CREATE TABLE instances (
        run_id TEXT NOT NULL, host TEXT NOT NULL, model TEXT NOT NULL, config_id TEXT NOT NULL,
        instance TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('complete', 'partial', 'failed')),
        mode TEXT, batch_size INTEGER, concurrency_range TEXT, intra INTEGER, inter INTEGER,
        xla INTEGER, onednn INTEGER,
        levels_failed TEXT NOT NULL,
        metadata TEXT NOT NULL,
        source TEXT NOT NULL, sha256 TEXT NOT NULL, ingested_at TEXT NOT NULL,
        PRIMARY KEY (run_id, host, model, config_id, instance)
    );
    CREATE TABLE points (
        run_id TEXT NOT NULL, host TEXT NOT NULL, model TEXT NOT NULL, config_id TEXT NOT NULL,
        instance TEXT NOT NULL, concurrency INTEGER NOT NULL,
        throughput REAL NOT NULL, p50_us REAL NOT NULL, p90_us REAL NOT NULL, p95_us REAL NOT NULL,
        p99_us REAL NOT NULL, avg_latency_us REAL, client_send_us REAL, client_recv_us REAL,
        PRIMARY KEY (run_id, host, model, config_id, instance, concurrency),
        FOREIGN KEY (run_id, host, model, config_id, instance) REFERENCES instances
    );
    CREATE INDEX points_by_model ON points (model, run_id);
    """,
]


class StoreError(RuntimeError):
    """The store cannot be used (newer schema, locked, corrupt); the message says which."""


class Store:
    def __init__(self, path: Path = DEFAULT_DB) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: {err}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this collector "
                f"knows ({len(MIGRATIONS)}); upgrade recbench"
            )
        for number in range(current, len(MIGRATIONS)):
            with self.db:
                self.db.executescript(MIGRATIONS[number])
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    def has(self, result: InstanceResult) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM instances WHERE run_id=? AND host=? AND model=? AND config_id=? AND instance=?",
            result.key,
        ).fetchone()
        return row is not None

    def add(self, results: list[InstanceResult]) -> int:
        """Store the results not stored yet, in one transaction. Returns how many were new."""
        stamp = datetime.now(UTC).isoformat()
        added = 0
        with self.db:
            for result in results:
                if self.has(result):
                    continue
                config = result.metadata.get("config", {})
                self.db.execute(
                    "INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        *result.key,
                        result.status,
                        config.get("mode"),
                        config.get("batch_size"),
                        config.get("concurrency_range"),
                        config.get("intra"),
                        config.get("inter"),
                        config.get("xla"),
                        config.get("onednn"),
                        json.dumps(result.metadata["levels_failed"]),
                        json.dumps(result.metadata, sort_keys=True),
                        str(result.source),
                        result.sha256,
                        stamp,
                    ),
                )
                self.db.executemany(
                    "INSERT INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            *result.key,
                            p.concurrency,
                            p.throughput,
                            p.p50_us,
                            p.p90_us,
                            p.p95_us,
                            p.p99_us,
                            p.avg_latency_us,
                            p.client_send_us,
                            p.client_recv_us,
                        )
                        for p in result.points
                    ],
                )
                added += 1
        return added

    def count(self, table: str) -> int:
        if table not in ("instances", "points"):
            raise ValueError(table)
        return self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
