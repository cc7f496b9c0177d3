"""Aggregates, baselines and regressions against values computed by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from collect import queries
from collect.aggregate import best_per_model, scaling
from collect.baseline import compare_to_baseline, load_baseline
from collect.history import regressions
from collect.ingest import ingest
from collect.store import INSTANCE_COLUMNS, KEY, POINT_COLUMNS, Store
from tests.results_tree import place

pytestmark = pytest.mark.unit


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


def stored(tmp_path, rows: list[dict], stamps: list[str] | None = None) -> Store:
    """A real store holding these points (instances derived from them, ingested in row order)."""
    frame = pd.DataFrame(rows)
    instances = frame.drop_duplicates(KEY).copy()
    instances["levels_failed"] = "[]"
    instances["metadata"] = "{}"
    instances["source"] = "generated"
    instances["sha256"] = ""
    # run order is ingest order: number the runs as they first appear
    first = {run: i for i, run in enumerate(dict.fromkeys(frame["run_id"]))}
    instances["ingested_at"] = instances["run_id"].map(lambda run: f"2026-01-01T00:00:{first[run]:02d}")
    frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *POINT_COLUMNS])))
    store = Store(tmp_path / "store.duckdb")
    with store.transaction():
        store.add_frames(instances[list(INSTANCE_COLUMNS)], frame[list(POINT_COLUMNS)])
    return store


@pytest.fixture
def points(tmp_path) -> Iterator[Store]:
    store = stored(
        tmp_path,
        [
            # entire: two NUMA instances; the machine is the sum of their bests (100 + 80).
            point("r1", "kp1", "dlrm", "dlrm-entire", "numa0", 1, 60, p99=900),
            point("r1", "kp1", "dlrm", "dlrm-entire", "numa0", 2, 100, p99=2500),
            point("r1", "kp1", "dlrm", "dlrm-entire", "numa1", 1, 50, p99=800),
            point("r1", "kp1", "dlrm", "dlrm-entire", "numa1", 2, 80, p99=1900),
            # single: one instance, same knobs but the mode.
            point("r1", "kp1", "dlrm", "dlrm-single", "numa0", 1, 70, mode="single"),
            point("r1", "kp1", "dlrm", "dlrm-single", "numa0", 2, 120, mode="single"),
            point("r1", "kp1", "dssm", "dssm-entire", "numa0", 1, 300, batch=512),
        ],
    )
    yield store
    store.close()


def test_entire_is_the_sum_of_its_instances_best(points: Store) -> None:
    machines = queries.machines(points, None).set_index("config_id")
    assert machines.loc["dlrm-entire", "throughput"] == 180
    assert machines.loc["dlrm-entire", "instances"] == 2
    assert machines.loc["dlrm-entire", "p99_us"] == 2500  # the worse instance at its best point
    assert machines.loc["dlrm-single", "throughput"] == 120


def test_best_per_model(points: Store) -> None:
    best = best_per_model(points, "r1").set_index("model")
    assert best.loc["dlrm", "throughput"] == 180
    assert best.loc["dlrm", "config_id"] == "dlrm-entire"
    assert best.loc["dssm", "throughput"] == 300


def test_scaling_of_entire_over_single(points: Store) -> None:
    table = scaling(queries.machines(points, ["r1"]))
    assert len(table) == 1
    assert table.loc[0, "scaling"] == pytest.approx(180 / 120)


def test_the_seed_baseline_ships_and_ratios_are_run_over_baseline() -> None:
    baseline = load_baseline()
    assert dict(zip(baseline["model"], baseline["baseline_throughput"], strict=True))["dlrm"] == 2407724
    best = pd.DataFrame([{"model": "dlrm", "throughput": 1203862.0, "batch_size": 256}])
    table = compare_to_baseline(best, baseline)
    assert table.loc[0, "ratio"] == pytest.approx(0.5)


def history(tmp_path, values: list[float]) -> Store:
    runs = [f"n{i:02d}" for i in range(len(values))]
    return stored(
        tmp_path, [point(run, "kp1", "dlrm", "c", "numa0", 1, v) for run, v in zip(runs, values, strict=True)]
    )


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        ([100, 102, 98, 101, 99, 90], True),  # a 10 % drop on a steady series
        ([100, 102, 98, 101, 99, 97], False),  # 3 %: below the 5 % floor
        ([100, 120, 80, 110, 90, 85], False),  # 15 % on a noisy series: MAD 10, allowed 30
        ([100, 120, 80, 110, 90, 60], True),  # 40 % beats even that noise
        ([100, 101, 90], False),  # too little history to judge
    ],
)
def test_regressions_are_noise_aware(tmp_path, values: list[float], flagged: bool) -> None:
    with history(tmp_path, values) as store:
        found = regressions(store)
    assert (not found.empty) == flagged
    if flagged:
        row = found.iloc[0]
        assert (row.run_id, row.throughput) == (f"n{len(values) - 1:02d}", values[-1])
        assert row.history_median == pd.Series(values[:-1]).median()


def test_a_regression_is_judged_against_the_runs_before_it_not_after(tmp_path) -> None:
    with history(tmp_path, [100, 102, 98, 101, 99, 80, 100, 101]) as store:
        assert regressions(store).empty  # the newest run is fine
        found = regressions(store, "n05")
    assert found.iloc[0].throughput == 80


def test_points_come_back_from_the_store(tmp_path) -> None:
    root = tmp_path / "results"
    place(root, "r1", "kp-01", "dlrm", "cfg", "numa0", "verbose.csv", "complete", [1, 2, 3, 4], [])
    place(root, "r1", "kp-01", "dlrm", "cfg", "numa1", "plain.csv", "complete", [1, 2, 3, 4], [])
    with Store(tmp_path / "s.duckdb") as store:
        ingest(root, store)
        frame = queries.points_of_run(store, "r1")
        best = best_per_model(store, "r1")
    assert len(frame) == 8
    # verbose.csv's best is 10469.8 (concurrency 3), plain.csv's 9049.51 (concurrency 4).
    assert best.loc[0, "throughput"] == pytest.approx(10469.8 + 9049.51)
