"""Numbers as people read them in summary.md and the CLI's tables: units in the headers, thousands
separators, fixed decimals, no scientific notation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collect.tables import for_people, markdown

pytestmark = pytest.mark.unit


def test_latencies_throughputs_ratios_and_counts_each_have_their_unit_and_decimals() -> None:
    frame = pd.DataFrame(
        {
            "model": ["dlrm", "deepfm"],
            "batch_size": np.array([256, 16], dtype=np.int64),
            "throughput": [2407724.4, 19519.31],
            "p99_us": [10050.0, 412.0],
            "ratio": [1.0, np.nan],
            "change": [-0.1234, 0.05],
            "levels_failed": [[2, 3], []],
        }
    )
    shown = for_people(frame)
    assert list(shown.columns) == [
        "model", "batch", "throughput (infer/s)", "p99 (ms)", "ratio", "change (%)", "levels failed",
    ]  # fmt: skip
    assert shown.iloc[0].tolist() == ["dlrm", "256", "2,407,724", "10.1", "1.00", "-12.3", "[2, 3]"]
    assert shown.iloc[1].tolist() == ["deepfm", "16", "19,519", "0.4", "", "+5.0", "[]"]  # no "nan"


def test_the_markdown_table_aligns_numbers_right_and_never_uses_exponents() -> None:
    text = markdown(pd.DataFrame({"host": ["kp-01"], "p99_us": [14120.5], "baseline_throughput": [2.4077e6]}))
    header, rule, row = text.splitlines()
    assert "p99 (ms)" in header and "baseline throughput (infer/s)" in header
    assert rule.startswith("|:") and rule.endswith(":|")  # text left, numbers right
    assert "14.1" in row and "2,407,700" in row and "e+" not in text
