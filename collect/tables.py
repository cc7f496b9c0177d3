"""Tables as people read them: units in the headers, thousands separators, invalid numbers replaced by
their reason."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd


def _number(value: object, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{float(value):,.{digits}f}"


# Columns of infer/s, of ratios, of whole numbers; latencies are the *_us columns, shown in ms.
THROUGHPUTS = {
    "throughput", "throughput_entire", "throughput_single", "baseline_throughput", "before", "after", "capacity",
    "value", "group_median",
}  # fmt: skip
RATIOS = {"ratio", "scaling", "ratio_to_twins"}
COUNTS = {
    "batch_size", "baseline_batch_size", "intra", "inter", "concurrency", "instances", "runs_before", "runs_after",
}  # fmt: skip
RENAMED = {
    "batch_size": "batch",
    "baseline_batch_size": "baseline batch",
    "concurrency_range": "concurrency range",
    "config_id": "config",
    "run_id": "run",
    "levels_failed": "levels failed",
    "runs_before": "runs before",
    "runs_after": "runs after",
    "pvalue": "p-value",
    "change": "change (%)",
}


def _header(column: str) -> str:
    if column.endswith("_us"):
        return f"{column.removesuffix('_us')} (ms)"
    if column in THROUGHPUTS:
        return f"{column.replace('_', ' ')} (infer/s)"
    return RENAMED.get(column, column.replace("_", " "))


def _shown(column: str, value: object) -> str:
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return str(list(value) if isinstance(value, np.ndarray) else value)
    if value is None or pd.isna(value):
        return ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return str(value)
    if column.endswith("_us"):
        return _number(value / 1000, 1)
    if column in THROUGHPUTS:
        return _number(value)
    if column in RATIOS:
        return _number(value, 2)
    if column == "change":
        return f"{float(value) * 100:+,.1f}"
    if column == "pvalue":
        return f"{float(value):.4f}"
    if column in COUNTS or float(value).is_integer():
        return f"{int(value):,}"
    return _number(value, 2)


def for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """FRAME as text: latencies in ms with one decimal, infer/s as whole numbers, ratios with two
    decimals, thousands separators, and the units in the headers."""
    shown = pd.DataFrame({_header(c): [_shown(c, v) for v in frame[c]] for c in frame.columns})
    return shown.reset_index(drop=True)


def markdown(frame: pd.DataFrame) -> str:
    """FRAME as a Markdown table for people (for_people), numbers aligned right."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame]
    align = ["right" if n else "left" for n in numeric]
    return for_people(frame).to_markdown(index=False, disable_numparse=True, colalign=align)


def _load_shown(load: object, client: object) -> str:
    """How a capacity's load arrived and who sent it: `closed`, `poisson`, `poisson (mlperf)`."""
    load = load if isinstance(load, str) else "closed"
    return f"{load} (mlperf)" if client == "mlperf" else load


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
                "load": _load_shown(r.load, r.client),
                "host": r.host,
                "capacity (infer/s)": shown,
                "per core (infer/s)": _number(r.per_core, 1),
                "per NUMA node (infer/s)": _number(r.per_numa_node),
                "p99 budget (ms)": _number(r.budget_ms),
                "p99 (ms)": _number(r.p99_us / 1000 if r.p99_us == r.p99_us else None, 1),
                "levels": r.levels or "",
                "found by": r.found_by,
                "config": r.config_id,
                "intra/inter": f"{r.intra}/{r.inter}",
            }
        )
    return pd.DataFrame(rows)
