"""A run's report under reports/<run_id>/: summary.md, a self-contained report.html with plots,
and the data behind them as CSV and Parquet."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collect import html_report, names, queries, tables
from collect.aggregate import best_per_model, scaling
from collect.baseline import compare_to_baseline, load_baseline
from collect.capacity import capacity_per_host, load_budgets, machine_capacity
from collect.changes import Thresholds, alarms, change_points, load_thresholds, newest_run_drops
from collect.efficiency import REFERENCE, by_architecture
from collect.errors import InputError
from collect.exchange import export_points
from collect.store import Store
from collect.twins import twins

# Runs the history plot spans: a quarter of nightly runs reads at a glance; older ones stay in the store.
HISTORY_PLOT_RUNS = 90
CAPACITY_SHOWN = [
    "model", "mode", "batch_size", "host", "capacity", "per_core", "per_numa_node", "cores_used", "per_core_used",
    "watts", "inferences_per_joule", "limited_by", "budget_ms", "p99_us", "levels", "found_by", "min_requests",
    "valid", "reason", "capacity_measured", "config_id", "intra", "inter", "arch", "frequency_mhz", "server_share",
    "client_share", "limit_why",
]  # fmt: skip
# The architectures' comparison as the page shows it (collect.efficiency.by_architecture).
EFFICIENCY_SHOWN = [
    "model", "mode", "batch_size", "load", "client", "budget_ms", "arch", "hosts", "per_core_used", "per_core_at",
    "per_core_vs_reference", "inferences_per_joule", "per_joule_at", "per_joule_vs_reference",
]  # fmt: skip


class ReportError(InputError):
    """The run asked for cannot be reported (not in the store, a name that cannot be a directory)."""


@dataclass
class Report:
    directory: Path
    findings: pd.DataFrame  # steps, outliers and drops in the newest run (collect.changes)
    alarms: pd.DataFrame  # those of them that are a regression to act on now


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    return tables.markdown(frame) + "\n"  # units in the headers, separators, fixed decimals


def chosen_run(store: Store, run_id: str | None, order: list[str]) -> str:
    """RUN_ID if the store holds it, else the newest run if RUN_ID is None; a clear error otherwise."""
    if not order:
        raise ReportError(f"{store.path}: the store holds no results; ingest some first")
    if run_id is None:
        return order[-1]
    if run_id not in order:
        raise ReportError(f"run {run_id!r} is not in {store.path} (runs: {', '.join(order[-5:])})")
    return run_id


def findings_of(store: Store, run_id: str, limits: Thresholds) -> pd.DataFrame:
    """Steps and outliers of every series up to RUN_ID, and its drops in RUN_ID."""
    found = [change_points(store, limits, run_id), newest_run_drops(store, limits, run_id)]
    return pd.concat([f for f in found if not f.empty] or found[:1], ignore_index=True)


def build_report(
    store: Store,
    run_id: str | None,
    out_root: Path,
    baseline: Path | None = None,
    thresholds: Path | None = None,
    budgets_file: Path | None = None,
) -> Report:
    order = queries.run_order(store)
    run_id = chosen_run(store, run_id, order)
    if not names.is_valid("run id", run_id):  # it becomes a directory: a store may hold one from before the check
        raise ReportError(f"{store.path}: {names.refusal('run id', run_id)}; it cannot name a report directory")
    points = queries.points_of_run(store, run_id)
    machines = queries.machines(store, [run_id])
    best = best_per_model(store, run_id)
    compared = compare_to_baseline(best, load_baseline(baseline) if baseline else load_baseline())
    limits = load_thresholds(thresholds) if thresholds else load_thresholds()
    budgets, default_ms = load_budgets(budgets_file) if budgets_file else load_budgets()
    found = findings_of(store, run_id, limits)
    alarmed = alarms(found, order[: order.index(run_id) + 1], limits)
    failed = queries.failures(store, run_id)
    plotted = queries.points_of_run(store, run_id, best_configs_only=True)
    shown_runs = order[: order.index(run_id) + 1][-HISTORY_PLOT_RUNS:]
    history = queries.host_history(store, shown_runs)
    directory = out_root / run_id
    directory.mkdir(parents=True, exist_ok=True)

    for name in ("points.csv", "points.parquet"):  # written by the engine, not pandas: a night is 100,000 rows
        export_points(store, directory / name, [run_id])
    machines.to_csv(directory / "machines.csv", index=False)
    capacities = machine_capacity(store, run_id, budgets, default_ms)
    capacity = capacity_per_host(capacities)
    arches = by_architecture(capacities)

    summary = [
        f"# recbench run {run_id}\n",
        f"{points['host'].nunique()} host(s), {points['model'].nunique()} model(s), {len(points)} measured points.\n",
        "## Best throughput per model\n",
        _table(tables.with_evidence_shown(best)),
        "## Against the baseline\n",
        _table(compared),
        "## Scaling of entire over single\n",
        _table(scaling(machines)),
        "## Regressions to act on (steps down in the newest runs, drops in this run)\n",
        _table(alarmed),
        "## Change points and outliers over the history\n",
        _table(found[found["kind"] != "drop in the newest run"]),
        "## Points that failed\n",
        _table(failed),
        f"## Architectures per core used and per watt (ratios to {REFERENCE} in the same class)\n",
        _table(tables.efficiency_table(arches, REFERENCE)),
    ]
    (directory / "summary.md").write_text("\n".join(summary))

    twin_table = twins(store, run_id, limits)
    page = _html(
        run_id, points, best, compared, capacity, twin_table, alarmed, found, failed, plotted, history, shown_runs,
        lambda model: budgets.get(model, default_ms), arches,
    )  # fmt: skip
    (directory / "report.html").write_text(page)
    return Report(directory, found, alarmed)


def _html(
    run_id: str,
    points: pd.DataFrame,
    best: pd.DataFrame,
    compared: pd.DataFrame,
    capacity: pd.DataFrame,
    twin_table: pd.DataFrame,
    alarmed: pd.DataFrame,
    found: pd.DataFrame,
    failed: pd.DataFrame,
    plotted: pd.DataFrame,
    history: pd.DataFrame,
    runs: list[str],
    budget_of: Callable[[str], float],
    arches: pd.DataFrame,
) -> str:
    figures: list[tuple[str, object]] = [("", html_report.overview(twin_table))]
    for model in sorted(points["model"].unique()):
        figures.append((f"{model}", html_report.curves(plotted, model, budget_of(model))))
        figures.append(("", html_report.history(history, found, model, runs)))
    invalid = capacity[~capacity["valid"]] if not capacity.empty else capacity
    strays = twin_table[twin_table["verdict"] == "strays"] if not twin_table.empty else twin_table
    twin_view = twin_table.sort_values("verdict", key=lambda v: v.ne("strays")) if not twin_table.empty else twin_table
    sections = [
        html_report.Section("Regressions to act on", html_report.table(alarmed)),
        html_report.Section("Hosts that stray from their twins", html_report.table(strays)),
        html_report.Section(
            "Capacity under the p99 budget, per host (cores used: the server's; watts: the host's meter)",
            html_report.table(
                tables.with_evidence_shown(capacity[[c for c in [*CAPACITY_SHOWN, "throttled"] if c in capacity]]),
                ~capacity["valid"],
            )
            if not capacity.empty
            else "<p>none</p>",
        ),
        html_report.Section(
            "Best throughput per model, mode and batch size", html_report.table(tables.with_evidence_shown(best))
        ),
        html_report.Section(
            f"Architectures compared per core used and per watt (ratios to {REFERENCE} in the same class)",
            html_report.table(_per_watt_shown(arches)[EFFICIENCY_SHOWN]) if not arches.empty else "<p>none</p>",
        ),
        html_report.Section("Against the baseline (same batch size only)", html_report.table(compared)),
        html_report.Section("Change points and outliers over the history", html_report.table(found)),
        html_report.Section("Twins (every host)", html_report.table(twin_view)),
        html_report.Section("Points that failed", html_report.table(failed)),
        html_report.Section("Capacities that are invalid, and why", html_report.table(invalid)),
    ]
    intro = (
        f"{points['host'].nunique()} host(s), {points['model'].nunique()} model(s), {len(points):,} measured points. "
        "Hover a point for its knobs; click a table header to sort."
    )
    return html_report.page(f"recbench run {run_id}", html.escape(intro), sections, figures)


def _per_watt_shown(arches: pd.DataFrame) -> pd.DataFrame:
    """The architectures' frame with "unavailable" per watt where the evidence says no meter was there."""
    shown = arches.astype({"inferences_per_joule": "object"})
    missing = arches["inferences_per_joule"].isna() & arches["evidence"].astype(bool)
    shown.loc[missing, "inferences_per_joule"] = tables.UNAVAILABLE
    return shown
