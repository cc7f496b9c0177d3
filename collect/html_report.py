"""report.html: one self-contained file (plotly.js inline, no network) to explore a run.

A fleet overview first (hosts x models, coloured by the ratio to the twins' median), then per model the
latency-throughput curve of each host's best config (one line per config and instance, ordered by
load, the budget drawn) and each host's history with change points and outliers marked; tables sort
by a click on their header, numbers carry units and thousands separators, and points that failed or
are invalid are listed with their reason. Script errors are counted into the page itself
(`data-script-errors` on <html>) so a headless browser can tell a page that rendered from one that did not.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

ERROR_TRAP = """<script>
window.recbenchErrors = [];
window.addEventListener('error', function (e) {
  window.recbenchErrors.push(String(e.message));
  document.documentElement.setAttribute('data-script-errors', String(window.recbenchErrors.length));
});
</script>"""

SORTING = """<script>
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.getAttribute('data-order') !== 'asc';
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute('data-value'), y = b.cells[column].getAttribute('data-value');
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      th.setAttribute('data-order', up ? 'asc' : 'desc');
    });
  });
});
window.addEventListener('load', function () {
  setTimeout(function () {
    var drawn = Array.from(document.querySelectorAll('.js-plotly-plot')).filter(function (d) {
      return d.querySelector('.main-svg');
    });
    document.documentElement.setAttribute('data-plots', String(drawn.length));
  }, 500);
});
</script>"""

STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;cursor:pointer}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fde8e8}
.invalid{color:#b00}
</style>"""

# Column name -> (header with unit, digits); others are shown as text.
UNITS = {
    "throughput": ("throughput (infer/s)", 0),
    "capacity": ("capacity (infer/s)", 0),
    "capacity_measured": ("measured (infer/s)", 0),
    "value": ("value (infer/s)", 0),
    "group_median": ("twins' median (infer/s)", 0),
    "baseline_throughput": ("baseline (infer/s)", 0),
    "before": ("before (infer/s)", 0),
    "after": ("after (infer/s)", 0),
    "ratio": ("ratio", 3),
    "ratio_to_twins": ("ratio to twins", 3),
    "change": ("change", 3),
    "per_core": ("per core (infer/s)", 1),
    "per_numa_node": ("per NUMA node (infer/s)", 0),
    "p50_us": ("p50 (µs)", 0),
    "p90_us": ("p90 (µs)", 0),
    "p99_us": ("p99 (µs)", 0),
    "budget_ms": ("p99 budget (ms)", 0),
    "pvalue": ("p-value", 6),
    "allowed": ("allowed deviation (infer/s)", 0),
    "min_requests": ("requests at the level", 0),
    # the evidence (bench.evidence): text in these columns (a verdict, "unavailable") is shown as it is
    "cores_used": ("cores used (server)", 2),
    "per_core_used": ("per core used (infer/s)", 1),
    "watts": ("watts (W)", 0),
    "inferences_per_joule": ("inferences per joule", 2),
    "frequency_mhz": ("clock (MHz)", 0),
    "server_share": ("server's share of its CPUs", 2),
    "client_share": ("client's share of its CPUs", 2),
    "limited_by": ("limit", 0),
    "limit_why": ("why", 0),
    "per_core_at": ("best per core at", 0),
    "per_joule_at": ("best per joule at", 0),
    "per_core_vs_reference": ("per core vs x86_64", 2),
    "per_joule_vs_reference": ("per joule vs x86_64", 2),
}


@dataclass
class Section:
    title: str
    body: str


def table(frame: pd.DataFrame, bad: pd.Series | None = None) -> str:
    """A sortable table: each cell keeps its raw value for sorting and shows it with units."""
    if frame.empty:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(UNITS.get(c, (c.replace('_', ' '), 0))[0])}</th>" for c in frame.columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for column, value in row.items():
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            if column in UNITS and not missing and isinstance(value, (int, float)):
                shown = f"{value:,.{UNITS[column][1]}f}"
                cells.append(f'<td class="num" data-value="{value}">{shown}</td>')
            else:
                text = "" if missing else str(value)
                cells.append(f'<td data-value="{html.escape(text)}">{html.escape(text)}</td>')
        marked = ' class="bad"' if bad is not None and bool(bad.iloc[i]) else ""
        rows.append(f"<tr{marked}>{''.join(cells)}</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def overview(twins: pd.DataFrame) -> go.Figure:
    """Hosts x models, coloured by the host's ratio to its twins' median (its best class per model)."""
    if twins.empty:
        return go.Figure()
    best = twins.sort_values("value", ascending=False).drop_duplicates(["host", "model"])
    grid = best.pivot(index="host", columns="model", values="ratio_to_twins")
    text = best.pivot(index="host", columns="model", values="verdict").reindex_like(grid)
    value = best.pivot(index="host", columns="model", values="value").reindex_like(grid)
    hover = [
        [
            f"{host} {model}<br>{value.loc[host, model]:,.0f} infer/s<br>ratio to twins {grid.loc[host, model]:.2f}"
            f"<br>{text.loc[host, model]}"
            if pd.notna(grid.loc[host, model])
            else f"{host} {model}: no result"
            for model in grid.columns
        ]
        for host in grid.index
    ]
    figure = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=list(grid.columns),
            y=list(grid.index),
            zmin=0.7,
            zmax=1.3,
            colorscale="RdBu",
            colorbar={"title": "ratio to twins"},
            hovertext=hover,
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title="Fleet overview: each host's best throughput over its twins' median", height=300 + 18 * len(grid)
    )
    return figure


def curves(points: pd.DataFrame, model: str, budget_ms: float) -> go.Figure:
    """p99 latency against throughput, one line per host, config and instance, ordered by load: a closed
    loop's levels are concurrencies (solid), an open loop's request rates of Poisson arrivals (dashed)."""
    figure = go.Figure()
    for (host, config, instance), series in points[points["model"] == model].groupby(["host", "config_id", "instance"]):
        knobs = series.iloc[0]
        load = knobs.get("load", "closed")
        open_loop = load != "closed"
        series = series.sort_values("request_rate" if open_loop else "concurrency")
        level = (series["request_rate"] if open_loop else series["concurrency"]).tolist()
        said = "rate %{customdata[0]:,.4g}/s" if open_loop else "concurrency %{customdata[0]}"
        figure.add_trace(
            go.Scatter(  # plain lists: plotly converts pandas objects slowly, one by one
                x=series["throughput"].tolist(),
                y=(series["p99_us"] / 1000).tolist(),
                mode="lines+markers",
                line={"dash": "dash" if open_loop else "solid"},
                name=f"{host} {instance} {config} ({load})",
                customdata=[[lv, p50] for lv, p50 in zip(level, series["p50_us"].tolist(), strict=True)],
                hovertemplate=(
                    f"{html.escape(host)} {html.escape(instance)}<br>{html.escape(config)}<br>"
                    f"batch {knobs['batch_size']}, intra {knobs['intra']}, inter {knobs['inter']}, "
                    f"{'open loop, ' + html.escape(str(load)) if open_loop else 'closed loop'}<br>"
                    f"{said}<br>%{{x:,.0f}} infer/s<br>p99 %{{y:,.1f}} ms<extra></extra>"
                ),
            )
        )
    figure.add_hline(y=budget_ms, line_dash="dash", line_color="#b00", annotation_text=f"budget {budget_ms:g} ms")
    figure.update_layout(
        title=f"{model}: p99 latency against throughput (each host's best config)",
        xaxis_title="throughput (infer/s)",
        yaxis_title="p99 latency (ms)",
        height=450,
    )
    return figure


def history(hosts: pd.DataFrame, findings: pd.DataFrame, model: str, runs: list[str]) -> go.Figure:
    """Each host's best machine throughput over the runs, change points and outliers marked."""
    figure = go.Figure()
    data = hosts[hosts["model"] == model]
    position = {run: i for i, run in enumerate(runs)}
    for host, series in data.groupby("host"):
        series = series.assign(order=series["run_id"].map(position)).sort_values("order")
        figure.add_trace(
            go.Scatter(
                x=series["run_id"].tolist(),
                y=series["throughput"].tolist(),
                mode="lines",
                name=str(host),
                hovertemplate=f"{html.escape(str(host))}<br>%{{x}}<br>%{{y:,.0f}} infer/s<extra></extra>",
            )
        )
    marks = findings[(findings["model"] == model) & findings["run_id"].isin(position)]
    for kind, symbol, colour in (
        ("regression", "triangle-down", "#b00"),
        ("improvement", "triangle-up", "#080"),
        ("outlier", "x", "#555"),
        ("drop in the newest run", "triangle-down-open", "#b00"),
    ):
        chosen = marks[marks["kind"] == kind]
        if chosen.empty:
            continue
        figure.add_trace(
            go.Scatter(
                x=chosen["run_id"].tolist(),
                y=chosen["after"].tolist(),
                mode="markers",
                marker={"symbol": symbol, "size": 11, "color": colour},
                name=kind,
                text=[f"{r.host} {r.config_id}: {r.change:+.1%}" for r in chosen.itertuples()],
                hovertemplate="%{text}<br>%{x}<extra>" + kind + "</extra>",
            )
        )
    figure.update_layout(
        title=f"{model}: history (best config per host; markers: per-config change points)",
        xaxis={"type": "category", "title": "run"},
        yaxis_title="throughput (infer/s)",
        height=420,
    )
    return figure


def page(title: str, intro: str, sections: list[Section], figures: list[tuple[str, go.Figure]]) -> str:
    """The whole document: plotly.js once, inline, before the first figure."""
    parts = []
    for i, (heading, figure) in enumerate(figures):
        div = figure.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False)
        parts.append(f"<h2>{html.escape(heading)}</h2>{div}" if heading else div)
    body = "".join(f"<h2>{html.escape(s.title)}</h2>{s.body}" for s in sections)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>{ERROR_TRAP}{STYLE}</head><body>"
        f"<h1>{html.escape(title)}</h1><p>{intro}</p>"
        + (parts[0] if parts else "")
        + body
        + "".join(parts[1:])
        + SORTING
        + "</body></html>"
    )
