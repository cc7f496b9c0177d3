"""Baselines: reference throughputs per model (the seed's Kunpeng 920 table ships), and ratios of a
run's best throughputs to them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from collect.checks import load_yaml, mapping, positive
from collect.errors import InputError

BASELINE_DIR = Path(__file__).with_name("baselines")
DEFAULT_BASELINE = BASELINE_DIR / "kunpeng920_tfserving215.yml"


class BaselineError(InputError):
    """A baseline file is wrong; the message names it."""


def load_baseline(path: Path = DEFAULT_BASELINE) -> pd.DataFrame:
    data = mapping(load_yaml(path, BaselineError), f"{path}", BaselineError)
    rows = []
    for model, entry in mapping(data.get("models"), f"{path}: models", BaselineError).items():
        entry = mapping(entry, f"{path}: models.{model}", BaselineError)
        throughput = positive(entry.get("throughput"), f"{path}: models.{model}.throughput", BaselineError)
        rows.append(
            {
                "model": model,
                "baseline_throughput": throughput,
                "baseline_batch_size": entry.get("batch_size"),
                "baseline_concurrency_range": entry.get("concurrency_range"),
            }
        )
    if not rows:
        raise BaselineError(f"{path}: no models")
    return pd.DataFrame(rows)


def compare_to_baseline(best: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """BEST (best_per_model) beside BASELINE, per model; ratio = run / baseline only where the batch
    size (and the mode, when the baseline names one) match: anything else is listed as not comparable."""
    if "baseline_mode" in baseline:  # another run: its classes, one to one
        table = best.merge(
            baseline,
            left_on=["model", "mode", "batch_size"],
            right_on=["model", "baseline_mode", "baseline_batch_size"],
            how="inner",
        )
    else:
        table = best.merge(baseline, on="model", how="inner")
    same = table["batch_size"] == table["baseline_batch_size"]
    table["ratio"] = (table["throughput"] / table["baseline_throughput"]).where(same)
    table["note"] = ""
    table.loc[~same, "note"] = table[~same].apply(
        lambda r: f"not compared: batch {r.batch_size} {r['mode']}, baseline batch {r.baseline_batch_size}", axis=1
    )
    columns = ["model", "mode", "batch_size", "throughput", "baseline_throughput", "ratio", "baseline_batch_size"]
    return table[[c for c in [*columns, "note"] if c in table]]
