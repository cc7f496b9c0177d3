"""A run's report under reports/<run_id>/: summary.md, a self-contained report.html with plots,
and the data behind them as CSV and Parquet."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collect import plots, queries
from collect.aggregate import best_per_model, scaling
from collect.baseline import compare_to_baseline, load_baseline
from collect.changes import Thresholds, alarms, change_points, load_thresholds, newest_run_drops
from collect.store import Store

# Runs the history plot spans: a quarter of nightly runs reads at a glance; older ones stay in the store.
HISTORY_PLOT_RUNS = 90


class ReportError(ValueError):
    pass


@dataclass
class Report:
    directory: Path
    findings: pd.DataFrame  # steps, outliers and drops in the newest run (collect.changes)
    alarms: pd.DataFrame  # those of them that are a regression to act on now


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    shown = frame.copy()
    for column in shown.columns:
        if "throughput" in column:  # infer/s read best as whole numbers with separators
            shown[column] = shown[column].map("{:,.0f}".format)
    return shown.to_markdown(index=False, floatfmt=".4g") + "\n"


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
) -> Report:
    order = queries.run_order(store)
    run_id = chosen_run(store, run_id, order)
    points = queries.points_of_run(store, run_id)
    machines = queries.machines(store, [run_id])
    best = best_per_model(store, run_id)
    compared = compare_to_baseline(best, load_baseline(baseline) if baseline else load_baseline())
    limits = load_thresholds(thresholds) if thresholds else load_thresholds()
    found = findings_of(store, run_id, limits)
    alarmed = alarms(found, order[: order.index(run_id) + 1], limits)
    failed = queries.failures(store, run_id)
    plotted = queries.points_of_run(store, run_id, best_configs_only=True)
    shown_runs = order[: order.index(run_id) + 1][-HISTORY_PLOT_RUNS:]
    history = queries.host_history(store, shown_runs)
    directory = out_root / run_id
    directory.mkdir(parents=True, exist_ok=True)

    points.to_csv(directory / "points.csv", index=False)
    points.to_parquet(directory / "points.parquet", index=False)
    machines.to_csv(directory / "machines.csv", index=False)

    summary = [
        f"# recbench run {run_id}\n",
        f"{points['host'].nunique()} host(s), {points['model'].nunique()} model(s), {len(points)} measured points.\n",
        "## Best throughput per model\n",
        _table(best),
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
    ]
    (directory / "summary.md").write_text("\n".join(summary))

    images = []
    for model in sorted(points["model"].unique()):
        for title, png in (
            ("throughput against concurrency", plots.throughput_vs_concurrency(plotted, model)),
            ("p99 latency against throughput", plots.latency_vs_throughput(plotted, model)),
            ("history", plots.history(history, model, shown_runs)),
        ):
            encoded = base64.b64encode(png).decode()
            images.append(
                f'<h3>{html.escape(model)}: {title}</h3><img alt="{html.escape(model)} {title}" '
                f'src="data:image/png;base64,{encoded}">'
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>recbench {html.escape(run_id)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:100%}</style></head><body>"
        f"<h1>recbench run {html.escape(run_id)}</h1>"
        "<h2>Best throughput per model</h2>"
        + best.to_html(index=False)
        + "<h2>Against the baseline</h2>"
        + compared.to_html(index=False)
        + "<h2>Regressions to act on</h2>"
        + (alarmed.to_html(index=False) if not alarmed.empty else "<p>none</p>")
        + "<h2>Change points and outliers</h2>"
        + (found.to_html(index=False) if not found.empty else "<p>none</p>")
        + "<h2>Points that failed</h2>"
        + (failed.to_html(index=False) if not failed.empty else "<p>none</p>")
        + "<h2>Plots</h2>"
        + "".join(images)
        + "</body></html>"
    )
    (directory / "report.html").write_text(page)
    return Report(directory, found, alarmed)
