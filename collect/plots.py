"""Plots of a run, rendered to PNG bytes (the HTML report embeds them, so it is one file)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on controllers and CI

import matplotlib.pyplot as plt
import pandas as pd

MAX_LEGEND = 12
MAX_TICKS = 15


def _legend(axis: plt.Axes) -> None:
    """A legend while it stays readable; past that, the number of series in the title."""
    handles = axis.get_lines()
    if len(handles) <= MAX_LEGEND:
        axis.legend(fontsize=6)
    else:
        axis.set_title(f"{axis.get_title()} ({len(handles)} series)")


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def throughput_vs_concurrency(points: pd.DataFrame, model: str) -> bytes:
    """One line per host, config and instance (the report passes each host's best config): how
    throughput grows with concurrency."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for (host, config, instance), series in points[points["model"] == model].groupby(["host", "config_id", "instance"]):
        series = series.sort_values("concurrency")
        axis.plot(series["concurrency"], series["throughput"], marker="o", label=f"{host} {instance} {config}")
    axis.set(title=f"{model}: throughput against concurrency", xlabel="concurrency", ylabel="infer/s")
    _legend(axis)
    axis.grid(alpha=0.3)
    return _png(figure)


def latency_vs_throughput(points: pd.DataFrame, model: str) -> bytes:
    figure, axis = plt.subplots(figsize=(7, 4))
    for (host, instance), series in points[points["model"] == model].groupby(["host", "instance"]):
        series = series.sort_values("throughput")
        axis.plot(series["throughput"], series["p99_us"] / 1000.0, marker="o", label=f"{host} {instance}")
    axis.set(title=f"{model}: p99 latency against throughput", xlabel="infer/s", ylabel="p99 latency (ms)")
    _legend(axis)
    axis.grid(alpha=0.3)
    return _png(figure)


def history(hosts: pd.DataFrame, model: str, run_order: list[str]) -> bytes:
    """Each host's best machine throughput over the runs (HOSTS: queries.host_history)."""
    figure, axis = plt.subplots(figsize=(7, 4))
    data = hosts[hosts["model"] == model].copy()
    data["order"] = data["run_id"].map({run: i for i, run in enumerate(run_order)})
    for host, series in data.groupby("host"):
        series = series.sort_values("order")
        axis.plot(series["order"], series["throughput"], marker="o", markersize=3, label=str(host))
    axis.set(title=f"{model}: history (best config per host)", xlabel="run", ylabel="infer/s")
    ticks = range(0, len(run_order), max(1, len(run_order) // MAX_TICKS))
    axis.set_xticks(list(ticks), [run_order[i] for i in ticks], rotation=45, ha="right", fontsize=6)
    _legend(axis)
    axis.grid(alpha=0.3)
    return _png(figure)
