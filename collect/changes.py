"""Change points, outliers and drops in each series' history (a series: host, model and config; its
values: the machine throughput of each run, in the fleet's run order).

- Steps: Apache Otava's change point detection (E-divisive with a t-test significance test and a
  minimum magnitude, `otava.analysis.compute_change_points`). A lasting step is reported once, at the
  first run of the new level, with the medians of the segments before and after it.
- Outliers: single runs far from the median of their segment. Otava has no outlier test and MongoDB's
  signal-processing-algorithms (which has GESD) pins numpy < 2, below what TensorFlow needs here, so
  this is a plain robust rule: further than K scaled MADs and a relative minimum from the median.
- The newest run: a drop beyond the noise of the previous runs, reported as unconfirmed (one run
  cannot tell a dip from a step).
Every threshold comes from a file (collect/thresholds.yml by default).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from otava.analysis import compute_change_points

from collect import queries
from collect.checks import load_yaml, mapping, positive, positive_integer
from collect.errors import InputError
from collect.store import Store

DEFAULT_THRESHOLDS = Path(__file__).with_name("thresholds.yml")
SERIES = ["host", "model", "config_id"]
MAD_TO_SIGMA = 1.4826  # a normal distribution's MAD times this is its standard deviation
COLUMNS = [*SERIES, "kind", "run_id", "before", "after", "change", "pvalue", "runs_before", "runs_after"]


class ThresholdsError(InputError):
    """A thresholds file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Thresholds:
    max_pvalue: float
    min_magnitude: float
    window_len: int
    min_runs: int
    alarm_runs: int
    outlier_mads: float
    outlier_min_magnitude: float
    history_runs: int
    floor: float
    mads: float
    min_history: int
    twins_floor: float
    twins_mads: float
    twins_min_group: int


# Each field of Thresholds: its section and key in the file, and what it must be. Every key is required,
# every number finite and above 0 (a p-value at most 1), whole numbers at least 1.
FIELDS = {
    "max_pvalue": ("change_points", "max_pvalue", "pvalue"),
    "min_magnitude": ("change_points", "min_magnitude", "number"),
    "window_len": ("change_points", "window_len", "count"),
    "min_runs": ("change_points", "min_runs", "count"),
    "alarm_runs": ("change_points", "alarm_runs", "count"),
    "outlier_mads": ("outliers", "mads", "number"),
    "outlier_min_magnitude": ("outliers", "min_magnitude", "number"),
    "history_runs": ("newest_run", "history_runs", "count"),
    "floor": ("newest_run", "floor", "number"),
    "mads": ("newest_run", "mads", "number"),
    "min_history": ("newest_run", "min_history", "count"),
    "twins_floor": ("twins", "floor", "number"),
    "twins_mads": ("twins", "mads", "number"),
    "twins_min_group": ("twins", "min_group", "count"),
}


def load_thresholds(path: Path = DEFAULT_THRESHOLDS) -> Thresholds:
    sections: dict[str, set[str]] = {}
    for section, key, _ in FIELDS.values():
        sections.setdefault(section, set()).add(key)
    data = mapping(load_yaml(path, ThresholdsError), f"{path}", ThresholdsError, sections)
    values: dict[str, float | int] = {}
    for name, (section, key, kind) in FIELDS.items():
        if section not in data:
            raise ThresholdsError(f"{path}: missing or not a number: section {section} is missing")
        entries = mapping(data[section], f"{path}: {section}", ThresholdsError, sections[section])
        if key not in entries:
            raise ThresholdsError(f"{path}: missing or not a number: {section}.{key} is missing")
        where = f"{path}: missing or not a number: {section}.{key}"
        if kind == "count":
            values[name] = positive_integer(entries[key], where, ThresholdsError)
        else:
            values[name] = positive(entries[key], where, ThresholdsError, at_most=1.0 if kind == "pvalue" else None)
    return Thresholds(**values)  # type: ignore[arg-type]


def _could_step(values: np.ndarray, window: int, magnitude: float) -> bool:
    """A cheap screen before Otava: can any point split the series into neighbouring windows whose
    means differ by half the minimum magnitude? If not, no reportable step exists (most series)."""
    w = max(2, min(window // 2, len(values) // 2))
    sums = np.concatenate([[0.0], np.cumsum(values)])
    left = (sums[w : len(values) - w + 1] - sums[: len(values) - 2 * w + 1]) / w
    right = (sums[2 * w :] - sums[w : len(values) - w + 1]) / w
    scale = np.maximum(np.abs(left), 1e-12)
    return bool(np.any(np.abs(right - left) / scale > magnitude / 2))


def analyse_series(values: np.ndarray, runs: Sequence[str] | np.ndarray, limits: Thresholds) -> list[dict]:
    """Steps and outliers of one series (VALUES in run order, RUNS their run ids)."""
    if len(values) < limits.min_runs:
        return []
    steps: list[int] = []
    if _could_step(values, limits.window_len, limits.min_magnitude):
        found, _ = compute_change_points(
            list(values), window_len=limits.window_len, max_pvalue=limits.max_pvalue, min_magnitude=limits.min_magnitude
        )
        steps = [int(cp.index) for cp in found]
    bounds = [0, *steps, len(values)]
    segments = [values[a:b] for a, b in itertools.pairwise(bounds)]
    findings = []
    for i, index in enumerate(steps):
        before, after = float(np.median(segments[i])), float(np.median(segments[i + 1]))
        change = (after - before) / before if before else 0.0
        if abs(change) < limits.min_magnitude:
            continue  # the means moved (an outlier pulls them), the medians did not: not a step
        stats = found[i].stats
        findings.append(
            {
                "kind": "regression" if change < 0 else "improvement",
                "run_id": runs[index],
                "before": before,
                "after": after,
                "change": change,
                "pvalue": float(stats.pvalue),
                "runs_before": len(segments[i]),
                "runs_after": len(segments[i + 1]),
            }
        )
    for (start, stop), segment in zip(itertools.pairwise(bounds), segments, strict=True):
        median = float(np.median(segment))
        if not median:
            continue
        distance = np.abs(segment - median)
        spread = MAD_TO_SIGMA * float(np.median(distance))
        far = (distance > limits.outlier_mads * spread) & (distance / abs(median) > limits.outlier_min_magnitude)
        for offset in np.flatnonzero(far):
            value = float(segment[offset])
            findings.append(
                {
                    "kind": "outlier",
                    "run_id": runs[start + offset],
                    "before": median,
                    "after": value,
                    "change": (value - median) / median,
                    "pvalue": np.nan,
                    "runs_before": stop - start,
                    "runs_after": 1,
                }
            )
    return findings


def change_points(store: Store, limits: Thresholds, upto: str | None = None) -> pd.DataFrame:
    """Steps and outliers of every series over the runs up to UPTO (default: every run)."""
    order = queries.run_order(store)
    if upto is not None:
        order = order[: order.index(upto) + 1]
    names, arrays = queries.series_history(store, order)
    series, positions, values = arrays["series"], arrays["position"], arrays["throughput"]
    run_ids = np.asarray(order, dtype=object)
    starts = np.flatnonzero(np.diff(series, prepend=-1))
    findings = []
    for begin, end in zip(starts, [*starts[1:], len(series)], strict=True):
        for finding in analyse_series(values[begin:end], run_ids[positions[begin:end]], limits):
            name = names.iloc[int(series[begin])]
            findings.append({"host": name.host, "model": name.model, "config_id": name.config_id, **finding})
    return pd.DataFrame(findings, columns=COLUMNS)


def newest_run_drops(store: Store, limits: Thresholds, run_id: str | None = None) -> pd.DataFrame:
    """Series whose throughput in RUN_ID (default: the newest run) dropped beyond the noise of the
    fleet's previous runs: unconfirmed until later runs show a step or a one-off."""
    order = queries.run_order(store)
    if not order:
        return pd.DataFrame(columns=COLUMNS)
    current = run_id or order[-1]
    position = order.index(current)
    past = order[max(0, position - limits.history_runs) : position]
    stats = queries.series_statistics(store, current, past)
    stats = stats[stats["history_runs"] >= limits.min_history]
    allowed = np.maximum(limits.floor * stats["history_median"], limits.mads * stats["history_mad"])
    dropped = stats[stats["history_median"] - stats["throughput"] > allowed]
    return pd.DataFrame(
        {
            **{column: dropped[column] for column in SERIES},
            "kind": "drop in the newest run",
            "run_id": current,
            "before": dropped["history_median"],
            "after": dropped["throughput"],
            "change": (dropped["throughput"] - dropped["history_median"]) / dropped["history_median"],
            "pvalue": np.nan,
            "runs_before": dropped["history_runs"],
            "runs_after": 1,
        },
        columns=COLUMNS,
    ).reset_index(drop=True)


def alarms(found: pd.DataFrame, order: list[str], limits: Thresholds) -> pd.DataFrame:
    """What sets the nightly's alarm: downward steps that began within the newest alarm_runs runs, and
    drops in the newest run."""
    recent = set(order[-limits.alarm_runs :])
    wanted = (found["kind"] == "drop in the newest run") | (
        (found["kind"] == "regression") & found["run_id"].isin(recent)
    )
    return found[wanted].reset_index(drop=True)


def describe(found: pd.DataFrame) -> list[str]:
    """One line per finding, as `regressions`, `report` and `nightly` print them."""
    lines = []
    for r in found.itertuples():
        what = {
            "regression": f"step down {-r.change:.1%} from {r.before:,.0f} to {r.after:,.0f} infer/s",
            "improvement": f"step up {r.change:.1%} from {r.before:,.0f} to {r.after:,.0f} infer/s",
            "outlier": f"outlier {r.change:+.1%}: {r.after:,.0f} infer/s, segment median {r.before:,.0f}",
        }.get(
            r.kind,
            f"drop {-r.change:.1%} in the newest run: {r.after:,.0f} infer/s, median of {r.runs_before} "
            f"runs {r.before:,.0f} (unconfirmed)",
        )
        lines.append(f"{r.host} {r.model} {r.config_id} at {r.run_id}: {what}")
    return lines
