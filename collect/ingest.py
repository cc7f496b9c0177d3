"""Ingest a results tree into the store: validate each instance, report the broken ones with their
path and skip them, store everything else in one transaction; nothing already stored changes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from collect.results import InstanceResult, ResultError, instance_dirs, load_instance
from collect.store import INSTANCE_COLUMNS, KEY, POINT_COLUMNS, Store

# Instances handed to the engine at once: large enough that DuckDB's bulk path dominates, small
# enough that a year's tree never sits in memory.
BATCH = 5000
KNOB_COLUMNS = ["mode", "batch_size", "concurrency_range", "intra", "inter", "xla", "onednn"]
TEXT_KNOBS = {"mode", "concurrency_range"}
MEASURES = [name for name in POINT_COLUMNS if name not in KEY]


@dataclass
class IngestReport:
    added: int = 0
    already_stored: int = 0
    problems: list[str] = field(default_factory=list)
    found: int = 0  # instance directories under the tree (broken ones included)


def frames_of(results: Iterable[InstanceResult], stamp: str) -> tuple[pa.Table, pa.Table]:
    """The store's rows for RESULTS, column by column: one per instance, one per point."""
    instances: dict[str, list] = {name: [] for name in INSTANCE_COLUMNS}
    points: dict[str, list] = {name: [] for name in POINT_COLUMNS}
    for result in results:
        config = result.metadata.get("config", {})
        for name, value in zip(KEY, result.key, strict=True):
            instances[name].append(value)
            points[name].extend([value] * len(result.points))
        instances["status"].append(result.status)
        for knob in KNOB_COLUMNS:
            value = config.get(knob)
            instances[knob].append(value if knob in TEXT_KNOBS else _integer(value))
        instances["levels_failed"].append(json.dumps(result.metadata["levels_failed"]))
        instances["metadata"].append(result.metadata_text or json.dumps(result.metadata, sort_keys=True))
        instances["source"].append(str(result.source))
        instances["sha256"].append(result.sha256)
        instances["ingested_at"].append(stamp)
        for point in result.points:
            for name in MEASURES:
                points[name].append(getattr(point, name))
    return _table(instances, INSTANCE_COLUMNS), _table(points, POINT_COLUMNS)


def _table(columns: dict[str, list], schema: dict[str, str]) -> pa.Table:
    types = {"VARCHAR": pa.string(), "INTEGER": pa.int64(), "DOUBLE": pa.float64()}
    return pa.table({name: pa.array(values, types[schema[name].split()[0]]) for name, values in columns.items()})


def _integer(value: object) -> int | None:
    """Knobs as the store keeps them: booleans (xla, onednn) and numbers as integers, absent as NULL."""
    if value is None or value == "":
        return None
    return int(value)  # type: ignore[arg-type]


def ingest(root: Path, store: Store, progress: Callable[[int, int], None] | None = None) -> IngestReport:
    report = IngestReport()
    directories = list(instance_dirs(root))
    report.found = len(directories)
    pending: list[InstanceResult] = []
    stamp = datetime.now(UTC).isoformat()

    def flush() -> None:
        added = store.add_frames(*frames_of(pending, stamp))
        report.added += added
        report.already_stored += len(pending) - added
        pending.clear()

    with store.transaction():
        for number, directory in enumerate(directories, start=1):
            try:
                pending.append(load_instance(directory))
            except ResultError as err:
                report.problems.append(str(err))
            if len(pending) >= BATCH:
                flush()
            if progress:
                progress(number, len(directories))
        flush()
    return report
