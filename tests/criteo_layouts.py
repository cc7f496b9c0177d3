"""The three Criteo layouts, derived from the 200 real rows in tests/data/criteo_sample.csv."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO

SAMPLE = REPO / "tests" / "data" / "criteo_sample.csv"


def _kaggle_field(value: str, index: int) -> str:
    # Kaggle's train.txt writes counts as integers ("260", not "260.0").
    if 1 <= index <= 13 and value.endswith(".0"):
        return value[:-2]
    return value


def write_layouts(directory: Path) -> dict[str, Path]:
    """csv-header (the sample itself), csv (no header) and kaggle (TAB, integer counts)."""
    lines = SAMPLE.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    assert header.startswith("label,I1,")
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv-header": directory / "sample_header.csv",
        "csv": directory / "train.csv",
        "kaggle": directory / "train.txt",
    }
    paths["csv-header"].write_text("\n".join(lines) + "\n")
    paths["csv"].write_text("\n".join(rows) + "\n")
    kaggle = ["\t".join(_kaggle_field(v, i) for i, v in enumerate(row.split(","))) for row in rows]
    paths["kaggle"].write_text("\n".join(kaggle) + "\n")
    return paths
