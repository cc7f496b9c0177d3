"""Regressions: each run against the last runs of the same host, model and config.

A drop is a regression when it is larger than the noise allows: more than the larger of a relative
floor (5 %) and K median absolute deviations of the history (3), so a noisy config needs a bigger
drop to alarm than a steady one.
"""

from __future__ import annotations

import pandas as pd

from collect.frames import machine_throughput

SERIES = ["host", "model", "config_id"]


def regressions(
    points: pd.DataFrame,
    run_order: list[str],
    history: int = 10,
    floor: float = 0.05,
    mads: float = 3.0,
    run_id: str | None = None,
) -> pd.DataFrame:
    """Series whose throughput in RUN_ID (default: the last of RUN_ORDER) dropped beyond the noise of
    their previous HISTORY runs (in RUN_ORDER, oldest first)."""
    machines = machine_throughput(points)
    if machines.empty:
        return pd.DataFrame()
    current = run_id or run_order[-1]
    position = {run: i for i, run in enumerate(run_order)}
    machines = machines[machines["run_id"].isin(position)]
    machines = machines.assign(order=machines["run_id"].map(position))
    found = []
    for key, series in machines.groupby(SERIES):
        now = series[series["run_id"] == current]
        past = series[series["order"] < position[current]].sort_values("order").tail(history)
        if now.empty or len(past) < 3:
            continue
        median = past["throughput"].median()
        mad = (past["throughput"] - median).abs().median()
        allowed = max(floor * median, mads * mad)
        value = float(now["throughput"].iloc[0])
        if median - value > allowed:
            found.append(
                {
                    **dict(zip(SERIES, key, strict=True)),
                    "run_id": current,
                    "throughput": value,
                    "history_median": median,
                    "history_mad": mad,
                    "allowed_drop": allowed,
                    "drop": (median - value) / median,
                    "history_runs": len(past),
                }
            )
    return pd.DataFrame(found)


def describe_regressions(found: pd.DataFrame) -> list[str]:
    """One line per regression, as `report` and `nightly` print them."""
    return [
        f"{r.host} {r.model} {r.config_id}: {r.throughput:,.0f} infer/s, "
        f"{r.drop:.1%} below the median of {r.history_runs} runs"
        for r in found.itertuples()
    ]
