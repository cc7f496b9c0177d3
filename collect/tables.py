"""Tables as people read them: units in the headers, thousands separators, invalid numbers replaced by
their reason."""

from __future__ import annotations

import pandas as pd


def _number(value: object, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{float(value):,.{digits}f}"


def capacity_table(capacity: pd.DataFrame) -> pd.DataFrame:
    """collect.capacity.capacity_per_host, for printing."""
    rows = []
    for r in capacity.itertuples():
        shown = (
            _number(r.capacity)
            if r.valid
            else f"INVALID: {r.reason}" + (f" (measured {_number(r.capacity_measured)})" if r.capacity_measured else "")
        )
        rows.append(
            {
                "model": r.model,
                "mode": r.mode,
                "batch": r.batch_size,
                "host": r.host,
                "capacity (infer/s)": shown,
                "per core": _number(r.per_core, 1),
                "per NUMA node": _number(r.per_numa_node),
                "p99 budget (ms)": _number(r.budget_ms),
                "p99 (ms)": _number(r.p99_us / 1000 if r.p99_us == r.p99_us else None, 1),
                "levels": r.levels or "",
                "found by": r.found_by,
                "config": r.config_id,
                "intra/inter": f"{r.intra}/{r.inter}",
            }
        )
    return pd.DataFrame(rows)
