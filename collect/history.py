"""Regressions: each series (host, model, config) of a run against the fleet's previous runs.

A drop is a regression when it is larger than the noise allows: more than the larger of a relative
floor (5 %) and K median absolute deviations of the history (3), so a noisy config needs a bigger
drop to alarm than a steady one. The history is the HISTORY runs before the run (the fleet's run
order); a series seen in fewer than 3 of them gets no verdict. The statistics run in the engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from collect import queries
from collect.store import Store

MIN_HISTORY = 3


def regressions(
    store: Store,
    run_id: str | None = None,
    history: int = 10,
    floor: float = 0.05,
    mads: float = 3.0,
) -> pd.DataFrame:
    """Series whose throughput in RUN_ID (default: the newest run) dropped beyond the noise of their
    previous HISTORY runs."""
    order = queries.run_order(store)
    if not order:
        return pd.DataFrame()
    current = run_id or order[-1]
    position = order.index(current)
    past = order[max(0, position - history) : position]
    stats = queries.series_statistics(store, current, past)
    stats = stats[stats["history_runs"] >= MIN_HISTORY]
    allowed = pd.Series(np.maximum(floor * stats["history_median"], mads * stats["history_mad"]), index=stats.index)
    dropped = stats[stats["history_median"] - stats["throughput"] > allowed].copy()
    dropped["allowed_drop"] = allowed[dropped.index]
    dropped["drop"] = (dropped["history_median"] - dropped["throughput"]) / dropped["history_median"]
    dropped.insert(3, "run_id", current)
    return dropped.reset_index(drop=True)


def describe_regressions(found: pd.DataFrame) -> list[str]:
    """One line per regression, as `report` and `nightly` print them."""
    return [
        f"{r.host} {r.model} {r.config_id}: {r.throughput:,.0f} infer/s, "
        f"{r.drop:.1%} below the median of {r.history_runs} runs"
        for r in found.itertuples()
    ]
