"""Aggregates, baselines and regressions against values computed by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from collect import queries
from collect.aggregate import best_per_model, scaling
from collect.baseline import compare_to_baseline, load_baseline
from collect.changes import load_thresholds, newest_run_drops
from collect.ingest import ingest
from collect.store import Store
from tests.results_tree import place, point, stored

pytestmark = pytest.mark.unit


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
    best = best_per_model(points, "r1").set_index(["model", "mode", "batch_size"])
    # one row per class: the single-instance config is never ranked against the whole machine
    assert best.loc[("dlrm", "entire", 256), "throughput"] == 180
    assert best.loc[("dlrm", "entire", 256), "config_id"] == "dlrm-entire"
    assert best.loc[("dlrm", "single", 256), "throughput"] == 120
    assert best.loc[("dssm", "entire", 512), "throughput"] == 300
    assert len(best) == 3


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
def test_a_drop_in_the_newest_run_is_noise_aware(tmp_path, values: list[float], flagged: bool) -> None:
    with history(tmp_path, values) as store:
        found = newest_run_drops(store, load_thresholds())
    assert (not found.empty) == flagged
    if flagged:
        row = found.iloc[0]
        assert (row.run_id, row.after) == (f"n{len(values) - 1:02d}", values[-1])
        assert row.before == pd.Series(values[:-1]).median()


def test_a_drop_is_judged_against_the_runs_before_it_not_after(tmp_path) -> None:
    with history(tmp_path, [100, 102, 98, 101, 99, 80, 100, 101]) as store:
        assert newest_run_drops(store, load_thresholds()).empty  # the newest run is fine
        found = newest_run_drops(store, load_thresholds(), "n05")
    assert found.iloc[0].after == 80


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
