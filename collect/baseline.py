"""Baselines: reference throughputs per model (the seed's Kunpeng 920 table ships), and ratios of a
run's best throughputs to them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

BASELINE_DIR = Path(__file__).with_name("baselines")
DEFAULT_BASELINE = BASELINE_DIR / "kunpeng920_tfserving215.yml"


class BaselineError(ValueError):
    pass


def load_baseline(path: Path = DEFAULT_BASELINE) -> pd.DataFrame:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise BaselineError(f"{path}: {err}") from None
    rows = []
    for model, entry in (data or {}).get("models", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("throughput"), (int, float)):
            raise BaselineError(f"{path}: model {model} needs a numeric throughput")
        rows.append(
            {
                "model": model,
                "baseline_throughput": float(entry["throughput"]),
                "baseline_batch_size": entry.get("batch_size"),
                "baseline_concurrency_range": entry.get("concurrency_range"),
            }
        )
    if not rows:
        raise BaselineError(f"{path}: no models")
    return pd.DataFrame(rows)


def compare_to_baseline(best: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """BEST (best_per_model) joined with BASELINE; ratio = run / baseline."""
    table = best.merge(baseline, on="model", how="inner")
    table["ratio"] = table["throughput"] / table["baseline_throughput"]
    columns = ["model", "throughput", "baseline_throughput", "ratio", "batch_size", "baseline_batch_size"]
    return table[[c for c in columns if c in table]]
