"""Ingest a results tree into the store: validate each instance, report the broken ones with their
path and skip them, store everything else in one transaction; nothing already stored changes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from collect.results import InstanceResult, ResultError, instance_dirs, load_instance
from collect.store import INSTANCE_COLUMNS, POINT_COLUMNS, Store

# Instances handed to the engine at once: large enough that DuckDB's bulk path dominates, small
# enough that a year's tree never sits in memory.
BATCH = 5000
KNOB_COLUMNS = ["mode", "batch_size", "concurrency_range", "intra", "inter", "xla", "onednn"]


@dataclass
class IngestReport:
    added: int = 0
    already_stored: int = 0
    problems: list[str] = field(default_factory=list)
    found: int = 0  # instance directories under the tree (broken ones included)


def frames_of(results: Iterable[InstanceResult], stamp: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store's rows for RESULTS: one per instance, one per point."""
    instances: list[dict] = []
    points: list[tuple] = []
    for result in results:
        config = result.metadata.get("config", {})
        key = dict(zip(("run_id", "host", "model", "config_id", "instance"), result.key, strict=True))
        instances.append(
            {
                **key,
                "status": result.status,
                **{knob: config.get(knob) for knob in KNOB_COLUMNS},
                "levels_failed": json.dumps(result.metadata["levels_failed"]),
                "metadata": json.dumps(result.metadata, sort_keys=True),
                "source": str(result.source),
                "sha256": result.sha256,
                "ingested_at": stamp,
            }
        )
        points.extend(
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
        )
    instance_frame = pd.DataFrame(instances, columns=list(INSTANCE_COLUMNS))
    for knob in ("batch_size", "intra", "inter", "xla", "onednn"):
        instance_frame[knob] = pd.array(instance_frame[knob].map(_integer), dtype="Int64")
    point_frame = pd.DataFrame(points, columns=list(POINT_COLUMNS))
    for column in ("avg_latency_us", "client_send_us", "client_recv_us"):
        point_frame[column] = point_frame[column].astype("float64")
    return instance_frame, point_frame


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
