"""gen-data: deterministic, streaming, shaped like the real layouts."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import pytest

import modelzoo.generate
from modelzoo.generate import CHUNK_ROWS, generate
from modelzoo.readers import detect_layout, read_all
from modelzoo.schema import CRITEO, TAOBAO

pytestmark = pytest.mark.unit


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("dataset", "layout"), [("criteo", "kaggle"), ("criteo", "csv"), ("criteo", "csv-header"), ("taobao", "csv")]
)
def test_same_seed_same_bytes_and_readable(tmp_path: Path, dataset: str, layout: str) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(dataset, a, 3000, seed=7, layout=layout)
    generate(dataset, b, 3000, seed=7, layout=layout)
    generate(dataset, c, 3000, seed=8, layout=layout)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    schema = CRITEO if dataset == "criteo" else TAOBAO
    assert detect_layout(a, schema) == layout
    batch = read_all(a, schema)
    assert len(batch) == 3000
    assert 0.05 < batch.labels.mean() < 0.4  # a click rate like real logs


def test_criteo_values_look_like_the_real_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    generate("criteo", path, 5000, seed=1)
    batch = read_all(path, CRITEO)
    hex_values = [v for v in batch.sparse[:, 0] if v]
    assert all(len(v) == 8 and int(v, 16) >= 0 for v in hex_values)
    assert len(set(batch.sparse[:, 8])) <= 3  # C9 has 3 values in the real data
    assert (batch.sparse[:, 21] == b"").mean() > 0.5  # C22 is mostly missing
    assert batch.dense[:, 1].min() == -1.0  # I2 goes down to -1


def test_memory_does_not_grow_with_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Smaller chunks keep the same shape of test at a tenth of the time tracemalloc costs.
    chunk = CHUNK_ROWS // 10
    monkeypatch.setattr(modelzoo.generate, "CHUNK_ROWS", chunk)

    def peak(rows: int) -> int:
        tracemalloc.start()
        generate("criteo", tmp_path / f"{rows}.csv", rows, seed=1)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(chunk), peak(4 * chunk)
    assert large < 1.5 * small, (small, large)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist for taobao"):
        generate("taobao", tmp_path / "t", 10, seed=1, layout="kaggle")
    with pytest.raises(ValueError, match="rows must be positive"):
        generate("criteo", tmp_path / "t", 0, seed=1)
