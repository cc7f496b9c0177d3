"""A run's report under reports/<run_id>/: summary.md, a self-contained report.html with plots,
and the data behind them as CSV and Parquet."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collect import plots
from collect.aggregate import best_per_model, scaling
from collect.baseline import compare_to_baseline, load_baseline
from collect.frames import machine_throughput, points_frame
from collect.history import regressions
from collect.store import Store


class ReportError(ValueError):
    pass


@dataclass
class Report:
    directory: Path
    regressions: pd.DataFrame


def run_order(store: Store) -> list[str]:
    """Runs oldest first, by when they were first ingested."""
    rows = store.db.execute(
        "SELECT run_id, MIN(ingested_at) AS first FROM instances GROUP BY run_id ORDER BY first, run_id"
    ).fetchall()
    return [row[0] for row in rows]


def failures(store: Store, run_id: str) -> pd.DataFrame:
    return pd.read_sql_query(
        "SELECT host, model, config_id, instance, status, levels_failed FROM instances "
        "WHERE run_id = ? AND status != 'complete' ORDER BY host, model, config_id, instance",
        store.db,
        params=(run_id,),
    )


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    shown = frame.copy()
    for column in shown.columns:
        if "throughput" in column:  # infer/s read best as whole numbers with separators
            shown[column] = shown[column].map("{:,.0f}".format)
    return shown.to_markdown(index=False, floatfmt=".4g") + "\n"


def build_report(store: Store, run_id: str | None, out_root: Path, baseline: Path | None = None) -> Report:
    order = run_order(store)
    if not order:
        raise ReportError(f"{store.path}: the store holds no results; ingest some first")
    run_id = run_id or order[-1]
    if run_id not in order:
        raise ReportError(f"run {run_id!r} is not in {store.path} (runs: {', '.join(order[-5:])})")
    everything = points_frame(store)
    points = everything[everything["run_id"] == run_id]
    machines_all = machine_throughput(everything)
    best = best_per_model(points)
    compared = compare_to_baseline(best, load_baseline(baseline) if baseline else load_baseline())
    found = regressions(everything, order[: order.index(run_id) + 1])
    failed = failures(store, run_id)
    directory = out_root / run_id
    directory.mkdir(parents=True, exist_ok=True)

    points.to_csv(directory / "points.csv", index=False)
    points.to_parquet(directory / "points.parquet", index=False)
    machines_all[machines_all["run_id"] == run_id].to_csv(directory / "machines.csv", index=False)

    summary = [
        f"# recbench run {run_id}\n",
        f"{points['host'].nunique()} host(s), {points['model'].nunique()} model(s), {len(points)} measured points.\n",
        "## Best throughput per model\n",
        _table(best),
        "## Against the baseline\n",
        _table(compared),
        "## Scaling of entire over single\n",
        _table(scaling(points)),
        "## Regressions\n",
        _table(found),
        "## Points that failed\n",
        _table(failed),
    ]
    (directory / "summary.md").write_text("\n".join(summary))

    images = []
    for model in sorted(points["model"].unique()):
        for title, png in (
            ("throughput against concurrency", plots.throughput_vs_concurrency(points, model)),
            ("p99 latency against throughput", plots.latency_vs_throughput(points, model)),
            ("history", plots.history(machines_all, model, order)),
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
        + "<h2>Regressions</h2>"
        + (found.to_html(index=False) if not found.empty else "<p>none</p>")
        + "<h2>Points that failed</h2>"
        + (failed.to_html(index=False) if not failed.empty else "<p>none</p>")
        + "<h2>Plots</h2>"
        + "".join(images)
        + "</body></html>"
    )
    (directory / "report.html").write_text(page)
    return Report(directory, found)
