"""Results trees shaped like the sweep runner's output, for the collector's tests and benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.layout import CSV_NAME, publish_instance, staging_dir
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
            single.mkdir()
            (single / run).symlink_to(root / run)
            ingest(single, store)
    return db
