"""Tables as people read them: units in the headers, thousands separators, invalid numbers replaced by
their reason."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from collect.efficiency import REFERENCE


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
    "cores_used": "cores used",
    "per_core_used": "per core used (infer/s)",
    "watts": "W",
    "inferences_per_joule": "infer/J",
    "limited_by": "limit",
    "frequency_mhz": "MHz",
}
# The evidence's figures (collect.capacity.machine_evidence), each with its decimals.
DIGITS = {"cores_used": 2, "per_core_used": 1, "watts": 0, "inferences_per_joule": 2, "frequency_mhz": 0}
UNAVAILABLE = "unavailable"


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
    if column in DIGITS:
        return _number(value, DIGITS[column])
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


def _known(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and value is not pd.NA


def watts_shown(watts: object, limited_by: object) -> object:
    """Watts as a table shows them: the figure; "unavailable" when the level's evidence was recorded but
    the host had no meter (the store keeps why, in points.energy_source); blank without evidence."""
    if _known(watts):
        return watts
    return UNAVAILABLE if _known(limited_by) else None


def limit_shown(limited_by: object, throttled: object) -> str:
    """The verdict in a cell: `server`, `latency, throttled`; blank without evidence."""
    if not _known(limited_by):
        return ""
    return f"{limited_by}, throttled" if _known(throttled) and bool(throttled) else str(limited_by)


# The columns the evidence adds to a table, as with_evidence_shown and capacity_table name them.
EVIDENCE_COLUMNS = ["cores_used", "per_core_used", "watts", "inferences_per_joule", "limited_by", "throttled"]
EVIDENCE_HEADERS = ["cores used", "per core used (infer/s)", "W", "infer/J", "limit"]
EVIDENCE_DETAILS = ["frequency_mhz", "server_share", "client_share", "limit_why"]  # the report's, beside them


def with_evidence_shown(frame: pd.DataFrame) -> pd.DataFrame:
    """FRAME with its watts and verdict as people read them (watts_shown, limit_shown): the verdict and
    its throttle flag in one column; without the evidence's columns when no row has any (a run measured
    before evidence: a table of empty columns says nothing)."""
    if "limited_by" not in frame:
        return frame
    if not frame.empty and frame[[c for c in EVIDENCE_COLUMNS if c in frame]].isna().all().all():
        return frame.drop(columns=[*EVIDENCE_COLUMNS, *EVIDENCE_DETAILS], errors="ignore")
    shown = frame.copy()
    if "watts" in shown:
        shown["watts"] = [watts_shown(w, v) for w, v in zip(frame["watts"], frame["limited_by"], strict=True)]
    throttled = frame["throttled"] if "throttled" in frame else [None] * len(frame)
    shown["limited_by"] = [limit_shown(v, t) for v, t in zip(frame["limited_by"], throttled, strict=True)]
    return shown.drop(columns=["throttled"], errors="ignore")


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
                "cores used": _number(r.cores_used, 2),
                "per core used (infer/s)": _number(r.per_core_used, 1),
                "W": _shown("watts", watts_shown(r.watts, r.limited_by)),
                "infer/J": _number(r.inferences_per_joule, 2),
                "limit": limit_shown(r.limited_by, r.throttled),
                "p99 budget (ms)": _number(r.budget_ms),
                "p99 (ms)": _number(r.p99_us / 1000 if r.p99_us == r.p99_us else None, 1),
                "levels": r.levels or "",
                "found by": r.found_by,
                "config": r.config_id,
                "intra/inter": f"{r.intra}/{r.inter}",
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty and (table[EVIDENCE_HEADERS] == "").all().all():  # measured before evidence
        table = table.drop(columns=EVIDENCE_HEADERS)
    return table


def efficiency_table(compared: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """collect.efficiency.by_architecture, for printing: ratios to REFERENCE's in the class, per watt
    "unavailable" where the levels' evidence says the hosts had no meter."""
    rows = []
    for r in compared.itertuples():
        energy = _number(r.inferences_per_joule, 2) or (UNAVAILABLE if r.evidence else "")
        rows.append(
            {
                "model": r.model,
                "mode": r.mode,
                "batch": r.batch_size,
                "load": _load_shown(r.load, r.client),
                "p99 budget (ms)": _number(r.budget_ms),
                "arch": r.arch,
                "hosts": r.hosts,
                "per core used (infer/s)": _number(r.per_core_used, 1),
                "per-core best": r.per_core_at or "",
                f"per core vs {reference}": _number(r.per_core_vs_reference, 2),
                "infer/J": energy,
                "per-J best": r.per_joule_at or "",
                f"per J vs {reference}": _number(r.per_joule_vs_reference, 2),
            }
        )
    return pd.DataFrame(rows)
