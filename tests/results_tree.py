"""Results trees shaped like the sweep runner's output, for the collector's tests and benchmark."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from bench.layout import CSV_NAME, publish_instance, staging_dir
from collect.store import INSTANCE_COLUMNS, KEY, POINT_COLUMNS, Store
from sim.results import simulated_metadata
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "perf_analyzer"


def runner_metadata(
    run: str,
    host: str,
    model: str,
    config: str,
    instance: str,
    status: str,
    reached: list[int],
    failed: list[int],
    concurrency_range: str = "1:4:1",
    batch_size: int = 16,
) -> dict:
    """metadata.json as the sweep runner writes it (sim.results), for a result with these levels."""
    meta = simulated_metadata(run, host, model, config, instance, reached, failed, concurrency_range, batch_size)
    assert meta["status"] == status, f"levels {reached} reached, {failed} failed make {meta['status']}, not {status}"
    return meta


def place(
    root: Path,
    run: str,
    host: str,
    model: str,
    config: str,
    instance: str,
    fixture: str | None,
    status: str,
    reached: list[int],
    failed: list[int],
) -> Path:
    """One instance directory holding a real perf_analyzer CSV from the fixtures (or none), published
    the way the sweep runner publishes it."""
    directory = root / run / host / model / config / instance
    staging = staging_dir(directory)
    staging.mkdir(parents=True)
    if fixture:
        shutil.copy(FIXTURES / fixture, staging / CSV_NAME)
    publish_instance(staging, directory, runner_metadata(run, host, model, config, instance, status, reached, failed))
    return directory


def place_run(root: Path, run: str) -> None:
    """A run of two hosts: kp-01 with two complete NUMA instances, kp-02 whose sweep stopped early."""
    place(root, run, "kp-01", "dlrm", "dlrm-entire-b16-x", "numa0", "verbose.csv", "complete", [1, 2, 3, 4], [])
    place(root, run, "kp-01", "dlrm", "dlrm-entire-b16-x", "numa1", "plain.csv", "complete", [1, 2, 3, 4], [])
    place(
        root,
        run,
        "kp-02",
        "dlrm",
        "dlrm-entire-b16-x",
        "numa0",
        "stopped_early.csv",
        "partial",
        [1],
        list(range(2, 31)),
    )


def two_run_store(tmp_path: Path) -> Path:
    """A store holding runs 2026-11-01 and 2026-11-02 of the same tree, ingested in run order."""
    from collect.ingest import ingest
    from collect.store import Store

    root = tmp_path / "results"
    place_run(root, "2026-11-01")
    place_run(root, "2026-11-02")
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        for run in ("2026-11-01", "2026-11-02"):
            single = tmp_path / f"only-{run}"
            shutil.copytree(root / run, single / run)  # a copy: a link leading out of a tree is refused
            ingest(single, store)
    return db


def point(
    run: str,
    host: str,
    model: str,
    config: str,
    instance: str,
    concurrency: int,
    throughput: float,
    p99: float = 1000.0,
    mode: str = "entire",
    batch: int = 256,
) -> dict:
    return {
        "run_id": run,
        "host": host,
        "model": model,
        "config_id": config,
        "instance": instance,
        "concurrency": concurrency,
        "throughput": throughput,
        "p50_us": p99 / 2,
        "p90_us": p99 * 0.9,
        "p95_us": p99 * 0.95,
        "p99_us": p99,
        "status": "complete",
        "mode": mode,
        "batch_size": batch,
        "concurrency_range": "1:2:1",
        "intra": 0,
        "inter": 0,
        "xla": 0,
        "onednn": 0,
    }


def stored(tmp_path: Path, rows: list[dict], metadata: dict[str, dict] | None = None) -> Store:
    """A real store holding these points (instances derived from them, ingested in row order);
    METADATA: each host's metadata.json content (default: {})."""
    frame = pd.DataFrame(rows)
    instances = frame.drop_duplicates(KEY).copy()
    instances["levels_failed"] = "[]"
    instances["metadata"] = instances["host"].map(lambda host: json.dumps((metadata or {}).get(host, {})))
    instances["source"] = "generated"
    instances["sha256"] = ""
    # run order is ingest order: number the runs as they first appear
    first = {run: i for i, run in enumerate(dict.fromkeys(frame["run_id"]))}
    instances["ingested_at"] = instances["run_id"].map(lambda run: f"2026-01-01T00:00:{first[run]:02d}")
    frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *POINT_COLUMNS])))
    store = Store(tmp_path / "store.duckdb")
    with store.transaction():
        store.add_frames(instances.reindex(columns=list(INSTANCE_COLUMNS)), frame[list(POINT_COLUMNS)])
    return store


def two_run_trees(tmp_path: Path) -> Path:
    """A store holding runs 2026-11-01 and 2026-11-02 (three instances each), ingested in run order from
    trees of their own (tmp_path/tree-<run>, which the tests ingest again)."""
    from collect.ingest import ingest

    db = tmp_path / "store.duckdb"
    for run in ("2026-11-01", "2026-11-02"):
        place_run(tmp_path / f"tree-{run}", run)
        with Store(db) as store:
            assert ingest(tmp_path / f"tree-{run}", store).added == 3
    return db
