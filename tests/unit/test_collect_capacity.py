"""Capacity under a p99 budget from grid results, against values planted by hand: the level chosen,
the sum over NUMA instances, the validity rule, classes kept apart, per-core figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from collect.capacity import MIN_REQUESTS, capacity_per_host, load_budgets, machine_capacity
from collect.cli import main
from tests.results_tree import point, stored

pytestmark = pytest.mark.unit

# (concurrency, infer/s, p99 ms) per instance: under 300 ms, numa0 reaches 240 at level 3, numa1 150 at 2.
CURVES = {
    "numa0": [(1, 100, 50), (2, 180, 120), (3, 240, 250), (4, 260, 400)],
    "numa1": [(1, 90, 60), (2, 150, 140), (3, 200, 310), (4, 210, 500)],
}


def rows(host: str, config: str = "dlrm-entire-b16", batch: int = 16, scale: float = 1.0) -> list[dict]:
    return [
        point("r1", host, "dlrm", config, instance, level, tput * scale, p99=ms * 1000, batch=batch)
        for instance, curve in CURVES.items()
        for level, tput, ms in curve
    ]


def facts(window_ms: int) -> dict:
    return {"config": {"measurement_interval_ms": window_ms}, "host_facts": {"cores": 48, "numa_node_count": 2}}


@pytest.fixture
def store(tmp_path: Path):
    planted = rows("long-windows") + rows("short-windows") + rows("long-windows", "dlrm-entire-b64", 64, 3.0)
    metadata = {"long-windows": facts(20_000), "short-windows": facts(5_000)}
    with stored(tmp_path, planted, metadata) as store:
        yield store


def test_capacity_is_the_best_level_within_the_budget_summed_over_instances(store) -> None:
    machines = machine_capacity(store, "r1", {}, 300).set_index(["host", "config_id"])
    row = machines.loc[("long-windows", "dlrm-entire-b16")]
    assert row.capacity == 240 + 150 and bool(row.valid)
    assert row.levels == "numa0@3 numa1@2" and row.p99_us == 250_000
    # 150 infer/s at batch 16 over 3 windows of 20 s is 562 requests: enough for a p99
    assert row.min_requests == pytest.approx(150 / 16 * 3 * 20) and row.min_requests >= MIN_REQUESTS


def test_too_few_requests_or_no_level_within_the_budget_is_invalid_with_its_reason(store) -> None:
    machines = machine_capacity(store, "r1", {}, 300).set_index(["host", "config_id"])
    short = machines.loc[("short-windows", "dlrm-entire-b16")]
    assert not short.valid and short.capacity != short.capacity  # NaN: never a plain number
    assert short.capacity_measured == 390 and short.reason == f"too few requests for a p99 (under {MIN_REQUESTS})"
    tight = machine_capacity(store, "r1", {"dlrm": 40}, 300).set_index(["host", "config_id"])
    assert tight.loc[("long-windows", "dlrm-entire-b16"), "reason"] == "no level within the budget"


def test_each_class_is_ranked_apart_and_normalised_per_core_and_numa_node(store) -> None:
    table = capacity_per_host(machine_capacity(store, "r1", {}, 300))
    assert [(r.batch_size, r.host) for r in table.itertuples()] == [
        (16, "long-windows"),
        (16, "short-windows"),
        (64, "long-windows"),
    ]
    first = table.iloc[0]
    assert first.per_core == pytest.approx(390 / 48) and first.per_numa_node == pytest.approx(195)


def test_cli_best_with_a_budget_shows_invalid_capacities_as_such(store, tmp_path: Path, capsys) -> None:
    db = str(store.path)
    store.close()
    assert main(["best", "--db", db, "--p99-budget-ms", "300"]) == 0
    out = capsys.readouterr().out
    assert "| 390 " in out and "| 8.1 " in out and "(measured 1,170)" in out
    assert "INVALID: too few requests for a p99" in out and "(measured 390)" in out
    budgets = tmp_path / "budgets.yml"
    budgets.write_text("default_p99_ms: 300\nmodels:\n  dlrm: 40\n")
    assert load_budgets(budgets) == ({"dlrm": 40.0}, 300.0)
    assert main(["best", "--db", db, "--budgets", str(budgets)]) == 0
    assert "INVALID: no level within the budget" in capsys.readouterr().out
    budgets.write_text("models: {dlrm: fast}\n")
    assert main(["best", "--db", db, "--budgets", str(budgets)]) == 2
    assert capsys.readouterr().err.startswith(f"collect: {budgets}: needs default_p99_ms")
