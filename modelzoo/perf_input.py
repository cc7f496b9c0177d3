"""perf_analyzer --input-data files made of real rows, so sweeps can send real data."""

from __future__ import annotations

import json
from pathlib import Path

from modelzoo.readers import iter_batches
from modelzoo.schema import Dataset


def write_perf_input(
    eval_data: Path, dataset: Dataset, output: Path, rows: int = 512, layout: str = "auto", skip_bad_rows: bool = False
) -> int:
    """Write up to ROWS rows of EVAL_DATA as perf_analyzer input data. Returns the number written."""
    entries = []
    for batch in iter_batches(eval_data, dataset, min(rows, 4096), layout, skip_bad_rows):
        columns = batch.feed(dataset)
        for i in range(len(batch)):
            entry: dict[str, list] = {}
            for name in dataset.dense:
                entry[name] = [float(columns[name][i])]
            for name in dataset.sparse:
                entry[name] = [columns[name][i].decode()]
            entries.append(entry)
            if len(entries) == rows:
                break
        if len(entries) == rows:
            break
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(json.dumps({"data": entries}) + "\n")
    tmp.replace(output)
    return len(entries)
