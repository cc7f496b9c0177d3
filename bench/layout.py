"""The results layout: where every result lies, what its files are called, what its metadata says.
The host-side runners write through these functions and the collector reads with these names;
nothing else spells them. What the files hold is bench.records' (the results contract).

    <results_root>/<run_id>/<host>/<model>/<config_id>/<instance>/{perf.csv, metadata.json, attempt-N.*}
    <results_root>/<run_id>/<host>/<model>/train/{<mode>.json, export.json}
    <results_root>/<run_id>/<host>/<model>/knob-search-<mode>.json   (what a knob search measured)
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime
from pathlib import Path

from bench.records import SCHEMA, InstanceRecord, Record

CSV_NAME = "perf.csv"
META_NAME = "metadata.json"
SERVER_ERROR_NAME = "server-error.log"
TRAIN_DIR = "train"
EXPORT_RECORD = "export.json"
# Directories whose name starts with this are unfinished work: never read, never fetched.
STAGING_PREFIX = "."


def now() -> str:
    return datetime.now(UTC).isoformat()


def run_dir(results_root: Path, run_id: str, host: str) -> Path:
    return results_root / run_id / host


def config_dir(results_root: Path, run_id: str, host: str, model: str, config_id: str) -> Path:
    return run_dir(results_root, run_id, host) / model / config_id


def train_record_path(host_results: Path, model: str, mode: str) -> Path:
    return host_results / model / TRAIN_DIR / f"{mode}.json"


def export_record_path(host_results: Path, model: str) -> Path:
    return host_results / model / TRAIN_DIR / EXPORT_RECORD


def knob_search_record_path(host_results: Path, model: str, mode: str) -> Path:
    return host_results / model / f"knob-search-{mode}.json"


def staging_dir(final: Path) -> Path:
    return final.with_name(f"{STAGING_PREFIX}{final.name}.partial")


def is_staging(path: Path) -> bool:
    return path.name.startswith(STAGING_PREFIX)


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """TEXT into PATH so that a reader sees the old file or the new one, never half of one (MODE: its
    permissions, else the umask's)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)


def write_record(path: Path, record: Record) -> None:
    """Atomically (write_atomically). A record built in code is checked as a reader will check it
    before it is written (RecordError names the field)."""
    text = type(record).from_json(record.to_json()).to_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)


# The first column of perf_analyzer's CSV: the level's concurrency, or its request rate (an open loop).
CONCURRENCY_COLUMN, RATE_COLUMN = "Concurrency", "Request Rate"


def _is_number(text: str | None) -> bool:
    try:
        return text is not None and text.strip().isascii() and float(text) >= 0
    except ValueError:
        return False


def read_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a perf_analyzer CSV (rows come sorted by throughput, not level)."""
    reader = csv.DictReader(io.StringIO(text))
    rows = [
        row for row in reader if row.get(CONCURRENCY_COLUMN, "").strip().isdigit() or _is_number(row.get(RATE_COLUMN))
    ]
    return list(reader.fieldnames or []), rows


def write_rows(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """A perf_analyzer CSV with its rows in the order given (the runner gives concurrency order)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    path.write_text(buffer.getvalue())


def instance_metadata(
    job: dict, instance: dict, expected: list[int], reached: list[int], attempts: list[dict], started: str
) -> dict:
    """metadata.json of one instance as a mapping: what was asked, what was reached, and the job's own
    metadata (open keys: versions, machine, sweep profile). `publish_instance` checks it as an
    InstanceRecord before anything is written."""
    config = job["config"]
    failed = [level for level in expected if level not in reached]
    return {
        **{k: v for k, v in job.get("metadata", {}).items() if k != "status"},
        "schema": SCHEMA,
        "run_id": job["run_id"],
        "host": job["host"],
        "model": job["model"],
        "config_id": config["config_id"],
        "config": config,
        "instance": instance,
        "status": "complete" if not failed else ("partial" if reached else "failed"),
        "levels_expected": expected,
        "levels_reached": reached,
        "levels_failed": failed,
        "attempts": attempts,
        "started_at": started,
        "finished_at": now(),
    }


def publish_instance(staging: Path, final: Path, metadata: dict | InstanceRecord) -> InstanceRecord:
    """Check the metadata as an InstanceRecord, write metadata.json last, then rename the staging
    directory: a reader never sees half a result, nor one the contract refuses."""
    record = metadata if isinstance(metadata, InstanceRecord) else InstanceRecord.from_json(metadata)
    (staging / META_NAME).write_text(record.to_text())
    os.replace(staging, final)
    return record
