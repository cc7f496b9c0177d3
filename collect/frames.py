"""The store as pandas tables: one row per measured point, and per machine (run, host, model, config)."""

from __future__ import annotations

import pandas as pd

from collect.store import Store

KEY = ["run_id", "host", "model", "config_id"]
KNOBS = ["mode", "batch_size", "concurrency_range", "intra", "inter", "xla", "onednn"]


def points_frame(store: Store) -> pd.DataFrame:
    """Every point with its instance's knobs and status."""
    query = (
        "SELECT p.*, i.status, i.mode, i.batch_size, i.concurrency_range, i.intra, i.inter, i.xla, i.onednn "
        "FROM points p JOIN instances i USING (run_id, host, model, config_id, instance)"
    )
    return pd.read_sql_query(query, store.db)


def instance_best(points: pd.DataFrame) -> pd.DataFrame:
    """Each instance's best point (its highest throughput) with the latencies measured there."""
    if points.empty:
        return points
    best = points.loc[points.groupby([*KEY, "instance"])["throughput"].idxmax()]
    return best.reset_index(drop=True)


def machine_throughput(points: pd.DataFrame) -> pd.DataFrame:
    """Throughput of a machine per (run, host, model, config): in `entire` mode the sum of its
    instances' best throughputs (one server and one client per NUMA node, as in the seed), in
    `single` mode its one instance's best. Latencies are the worst instance's at its best point."""
    best = instance_best(points)
    if best.empty:
        return best
    grouped = best.groupby(KEY, as_index=False).agg(
        throughput=("throughput", "sum"),
        instances=("instance", "count"),
        concurrency=("concurrency", "max"),
        p50_us=("p50_us", "max"),
        p90_us=("p90_us", "max"),
        p99_us=("p99_us", "max"),
        **{knob: (knob, "first") for knob in KNOBS},
    )
    return grouped
