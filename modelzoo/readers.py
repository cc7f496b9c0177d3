"""Streaming readers for the real data layouts, strict about malformed rows.

Criteo comes in three layouts, told apart by the first line:
  kaggle      train.txt / dac_sample.txt: no header, TAB separated
  csv         the seed benchmark's train.csv / eval.csv: no header, comma separated
  csv-header  comma separated with a header line (like tests/data/criteo_sample.csv)
Taobao comes in EasyRec's comma separated layout, with or without a header line.

Missing values behave as in the seed: an empty dense value is 0, an empty category is "".
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelzoo.schema import Dataset

LAYOUTS = ("auto", "kaggle", "csv", "csv-header")


class DataError(ValueError):
    """A data file cannot be used; the message names the file and, where it applies, the line."""


@dataclass
class Batch:
    labels: np.ndarray  # float32 [n]
    dense: np.ndarray  # float32 [n, len(dataset.dense)]
    sparse: np.ndarray  # object (bytes) [n, len(dataset.sparse)]

    def __len__(self) -> int:
        return len(self.labels)

    def feed(self, dataset: Dataset) -> dict[str, np.ndarray]:
        """Inputs by column name, as the exported signature takes them."""
        columns = {name: self.dense[:, i] for i, name in enumerate(dataset.dense)}
        columns.update({name: self.sparse[:, i] for i, name in enumerate(dataset.sparse)})
        return columns


@dataclass
class ReadStats:
    rows: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, object]:
        return {"rows": self.rows, "skipped_bad_rows": self.skipped, "examples": self.skipped_examples[:5]}


def detect_layout(path: Path, dataset: Dataset) -> str:
    with path.open("r", newline="") as handle:
        first = handle.readline()
    if not first.strip():
        raise DataError(f"{path}: file is empty")
    if "\t" in first:
        return "kaggle"
    if first.split(",", 1)[0].strip() == dataset.label:
        return "csv-header"
    return "csv"


class RowParser:
    """Turns one split row into (label, dense, sparse) or raises DataError naming file and line."""

    def __init__(self, dataset: Dataset, path: Path) -> None:
        self.dataset = dataset
        self.path = path
        index = {name: i for i, name in enumerate(dataset.columns)}
        self.label_at = index[dataset.label]
        self.dense_at = [index[c] for c in dataset.dense]
        self.sparse_at = [index[c] for c in dataset.sparse]
        self.width = len(dataset.columns)

    def parse(self, fields: list[str], line: int) -> tuple[float, list[float], list[bytes]]:
        where = f"{self.path}:{line}"
        if len(fields) != self.width:
            raise DataError(f"{where}: expected {self.width} fields, found {len(fields)}")
        label = fields[self.label_at].strip()
        if label not in ("0", "1", "0.0", "1.0"):
            raise DataError(f"{where}: label {self.dataset.label} must be 0 or 1, found {label!r}")
        dense = []
        for at in self.dense_at:
            text = fields[at].strip()
            try:
                value = float(text) if text else 0.0
            except ValueError:
                raise DataError(f"{where}: {self.dataset.columns[at]} is not a number: {text!r}") from None
            if not math.isfinite(value):
                raise DataError(f"{where}: {self.dataset.columns[at]} is not finite: {text!r}")
            dense.append(value)
        sparse = [fields[at].strip().encode() for at in self.sparse_at]
        return float(label[0]), dense, sparse


def iter_batches(
    path: Path,
    dataset: Dataset,
    batch_size: int,
    layout: str = "auto",
    skip_bad_rows: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[Batch]:
    """Yield batches of at most BATCH_SIZE rows, reading the file once, front to back."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    stats = stats if stats is not None else ReadStats()
    if layout == "auto":
        layout = detect_layout(path, dataset)
    if layout not in LAYOUTS:
        raise DataError(f"{path}: unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    parser = RowParser(dataset, path)
    delimiter = "\t" if layout == "kaggle" else ","
    labels: list[float] = []
    dense: list[list[float]] = []
    sparse: list[list[bytes]] = []
    with path.open("r", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        for fields in reader:
            line = reader.line_num
            if line == 1 and layout == "csv-header":
                if fields[: len(dataset.columns)] != dataset.columns:
                    raise DataError(f"{path}:1: header does not match the {dataset.name} columns")
                continue
            if not fields or fields == [""]:
                continue
            try:
                label, row_dense, row_sparse = parser.parse(fields, line)
            except DataError as err:
                if not skip_bad_rows:
                    raise
                stats.skipped += 1
                stats.skipped_examples.append(str(err))
                continue
            labels.append(label)
            dense.append(row_dense)
            sparse.append(row_sparse)
            stats.rows += 1
            if len(labels) == batch_size:
                yield _batch(labels, dense, sparse, dataset)
                labels, dense, sparse = [], [], []
    if labels:
        yield _batch(labels, dense, sparse, dataset)
    if stats.rows == 0:
        raise DataError(f"{path}: no usable rows ({stats.skipped} malformed)")


def _batch(labels: list[float], dense: list[list[float]], sparse: list[list[bytes]], dataset: Dataset) -> Batch:
    return Batch(
        labels=np.asarray(labels, dtype=np.float32),
        dense=np.asarray(dense, dtype=np.float32).reshape(len(labels), len(dataset.dense)),
        sparse=np.asarray(sparse, dtype=object).reshape(len(labels), len(dataset.sparse)),
    )


def read_all(
    path: Path, dataset: Dataset, layout: str = "auto", skip_bad_rows: bool = False, stats: ReadStats | None = None
) -> Batch:
    """The whole file as one batch (for evaluation files that fit in memory)."""
    batches = list(iter_batches(path, dataset, 1 << 16, layout, skip_bad_rows, stats))
    return Batch(
        labels=np.concatenate([b.labels for b in batches]),
        dense=np.concatenate([b.dense for b in batches]),
        sparse=np.concatenate([b.sparse for b in batches]),
    )
