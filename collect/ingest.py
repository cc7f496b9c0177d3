"""Ingest a results tree into the store: validate each instance, report the broken ones with their
path and skip them, store everything else in one transaction; nothing already stored changes."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from bench.records import best_point
from collect.results import (
    InstanceResult,
    ResultError,
    instance_dirs,
    instance_figures,
    load_instance,
    point_figures,
)
from collect.store import (
    BEST_COLUMNS,
    INSTANCE_COLUMNS,
    INSTANCE_EVIDENCE,
    KEY,
    KNOBS,
    POINT_COLUMNS,
    POINT_EVIDENCE,
    Store,
)

# Instance directories read by one worker and handed to the engine at once: large enough that the
# bulk paths dominate, small enough that a year's tree never sits in memory and progress moves.
CHUNK = 1000
MAX_WORKERS = 4
TEXT_KNOBS = {"mode", "concurrency_range"}
MEASURES = [name for name in POINT_COLUMNS if name not in KEY]
INSTANCE_SCHEMA = INSTANCE_COLUMNS | BEST_COLUMNS | INSTANCE_EVIDENCE
POINT_SCHEMA = POINT_COLUMNS | POINT_EVIDENCE


@dataclass
class IngestReport:
    added: int = 0
    already_stored: int = 0
    problems: list[str] = field(default_factory=list)
    found: int = 0  # instance directories under the tree (broken ones included)


def columns_of(results: Iterable[InstanceResult], stamp: str) -> tuple[dict[str, list], dict[str, list]]:
    """The store's rows for RESULTS, column by column, as plain lists (what a worker process sends
    back): one row per instance, one per point."""
    instances: dict[str, list] = {name: [] for name in INSTANCE_SCHEMA}
    points: dict[str, list] = {name: [] for name in POINT_SCHEMA}
    for result in results:
        config = result.record.config
        for name, value in zip(KEY, result.key, strict=True):
            instances[name].append(value)
            points[name].extend([value] * len(result.points))
        instances["status"].append(result.status)
        for knob in KNOBS:
            value = getattr(config, knob)
            instances[knob].append(value if knob in TEXT_KNOBS else _integer(value))
        instances["load"].append(config.load)
        instances["client"].append(config.client)
        instances["levels_failed"].append(json.dumps(result.record.levels_failed))
        instances["metadata"].append(result.metadata_text)
        instances["source"].append(str(result.source))
        instances["sha256"].append(result.sha256)
        instances["ingested_at"].append(stamp)
        # the best point, here where the points are at hand (the store keeps it beside the instance)
        best = best_point(result.record.search, result.points)
        instances["best_throughput"].append(best.throughput if best else None)
        instances["best_concurrency"].append(best.concurrency if best else None)
        instances["best_p50_us"].append(best.p50_us if best else None)
        instances["best_p90_us"].append(best.p90_us if best else None)
        instances["best_p99_us"].append(best.p99_us if best else None)
        instances["best_request_rate"].append(best.request_rate if best else None)
        figures = instance_figures(result)  # the verdict and evidence of its answer (collect.results)
        for name in INSTANCE_EVIDENCE:
            instances[name].append(figures.get(name))
        evidence = result.evidence or [None] * len(result.points)
        verdicts = result.verdicts or [None] * len(result.points)
        for point, seen, verdict in zip(result.points, evidence, verdicts, strict=True):
            for name in MEASURES:
                points[name].append(getattr(point, name))
            shown = point_figures(point, seen, verdict)
            for name in POINT_EVIDENCE:
                points[name].append(shown.get(name))
    return instances, points


def _table(columns: dict[str, list], schema: dict[str, str]) -> pa.Table:
    types = {"VARCHAR": pa.string(), "INTEGER": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}
    return pa.table({name: pa.array(values, types[schema[name].split()[0]]) for name, values in columns.items()})


def _integer(value: object) -> int | None:
    """Knobs as the store keeps them: booleans (xla, onednn) and numbers as integers, absent as NULL."""
    if value is None or value == "":
        return None
    return int(value)  # type: ignore[arg-type]


Columns = tuple[dict[str, list], dict[str, list], list[str]]


def read_chunk(directories: list[Path], stamp: str, root: Path | None = None) -> Columns:
    """Validate and read some instance directories (of the tree ROOT): their store rows, and the
    problems found. Plain Python only (no Arrow, no DuckDB): it runs in forked worker processes."""
    results, problems = [], []
    for directory in directories:
        try:
            results.append(load_instance(directory, root))
        except ResultError as err:
            problems.append(str(err))
    instances, points = columns_of(results, stamp)
    return instances, points, problems


def ingest(
    root: Path, store: Store, progress: Callable[[int, int], None] | None = None, workers: int | None = None
) -> IngestReport:
    """Store every valid instance under ROOT not stored yet, in one transaction. Reading and checking
    the files (most of the time) runs in WORKERS processes (default: one per CPU, at most 4) when the
    tree is large enough to repay starting them; the engine adds their rows in order, in this one."""
    report = IngestReport()
    directories = list(instance_dirs(root))
    report.found = len(directories)
    stamp = datetime.now(UTC).isoformat()
    chunks = [directories[i : i + CHUNK] for i in range(0, len(directories), CHUNK)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, MAX_WORKERS)
    done = 0

    def store_chunk(chunk: list[Path], read: Columns) -> None:
        nonlocal done
        instance_columns, point_columns, problems = read
        instances = _table(instance_columns, INSTANCE_SCHEMA)
        added = store.add_frames(instances, _table(point_columns, POINT_SCHEMA))
        report.added += added
        report.already_stored += instances.num_rows - added
        report.problems.extend(problems)
        done += len(chunk)
        if progress:
            progress(done, len(directories))

    with store.transaction():
        if workers > 1 and len(chunks) > 1:
            # fork: the workers inherit the loaded modules instead of importing them again
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                for chunk, read in zip(
                    chunks, pool.map(read_chunk, chunks, [stamp] * len(chunks), [root] * len(chunks)), strict=True
                ):
                    store_chunk(chunk, read)
        else:
            for chunk in chunks:
                store_chunk(chunk, read_chunk(chunk, stamp, root))
    if progress and not directories:
        progress(0, 0)
    return report
