"""Readers of the real layouts, on the real Criteo rows and on broken variants of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelzoo.readers import DataError, ReadStats, detect_layout, iter_batches, read_all
from modelzoo.schema import CRITEO, TAOBAO
from tests.criteo_layouts import SAMPLE, write_layouts

pytestmark = pytest.mark.unit


@pytest.fixture
def layouts(tmp_path: Path) -> dict[str, Path]:
    return write_layouts(tmp_path)


def test_the_three_layouts_are_detected_and_read_the_same(layouts: dict[str, Path]) -> None:
    batches = {}
    for layout, path in layouts.items():
        assert detect_layout(path, CRITEO) == layout
        batches[layout] = read_all(path, CRITEO)
    reference = batches["csv-header"]
    assert len(reference) == 200
    assert reference.labels.sum() == 49  # the sample's positives (tests/data/README.md)
    for batch in batches.values():
        np.testing.assert_array_equal(batch.labels, reference.labels)
        np.testing.assert_array_equal(batch.dense, reference.dense)
        assert (batch.sparse == reference.sparse).all()


def test_missing_values_are_zero_and_empty_like_the_seed(layouts: dict[str, Path]) -> None:
    first = read_all(layouts["csv"], CRITEO)
    # Row 1: ",,3,260.0,,17668.0,..." -> I1 missing, I2 = 3, I3 = 260, I4 missing.
    assert first.dense[0, :5].tolist() == [0.0, 3.0, 260.0, 0.0, 17668.0]
    assert first.sparse[0, 0] == b"05db9164"
    assert first.sparse[0, 19] == b""  # C20 is empty in that row
    assert first.dense[1, 1] == -1.0  # negative counts are kept


def test_batches_stream_in_order(layouts: dict[str, Path]) -> None:
    sizes = [len(b) for b in iter_batches(layouts["kaggle"], CRITEO, 64)]
    assert sizes == [64, 64, 64, 8]


def broken(tmp_path: Path, line_no: int, new_line: str) -> Path:
    lines = SAMPLE.read_text().splitlines()
    lines[line_no - 1] = new_line
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def row_with(field: int, value: str) -> str:
    fields = SAMPLE.read_text().splitlines()[5].split(",")
    fields[field] = value
    return ",".join(fields)


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (",".join(["0"] * 39), "expected 40 fields, found 39"),
        (row_with(3, "lots"), "I3 is not a number: 'lots'"),
        (row_with(0, "2"), "label label must be 0 or 1, found '2'"),
        (row_with(5, "nan"), "I5 is not finite"),
    ],
)
def test_a_malformed_row_names_file_and_line(tmp_path: Path, bad_row: str, message: str) -> None:
    path = broken(tmp_path, 42, bad_row)
    with pytest.raises(DataError) as caught:
        read_all(path, CRITEO)
    assert str(caught.value).startswith(f"{path}:42: ")
    assert message in str(caught.value)


def test_skip_bad_rows_skips_and_counts(tmp_path: Path) -> None:
    path = broken(tmp_path, 42, row_with(3, "lots"))
    stats = ReadStats()
    batch = read_all(path, CRITEO, skip_bad_rows=True, stats=stats)
    assert len(batch) == 199
    assert stats.skipped == 1
    assert stats.as_record()["examples"] == [f"{path}:42: I3 is not a number: 'lots'"]


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="file is empty"):
        read_all(path, CRITEO)


def test_a_header_only_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(SAMPLE.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match="no usable rows"):
        read_all(path, CRITEO)


def test_a_truncated_file_is_an_error_at_its_last_line(tmp_path: Path) -> None:
    text = SAMPLE.read_text()
    path = tmp_path / "truncated.csv"
    path.write_text(text[: len(text) // 2])  # cut in the middle of a row
    last_line = path.read_text().count("\n") + 1
    with pytest.raises(DataError, match=rf"truncated.csv:{last_line}: expected 40 fields"):
        read_all(path, CRITEO)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_all(tmp_path / "nope.csv", CRITEO)


def test_taobao_rows_drop_the_list_features(tmp_path: Path) -> None:
    path = tmp_path / "taobao.csv"
    path.write_text(
        "1,0,430548,136,2874,88768,1279,70562,1260,71,6,2,4,2,1,1,3,2874|2877,70562,811\n"
        "0,0,430539,587,11,275486,75972,66637,572128,78,2,2,1,2,3,0,1,,,59\n"
    )
    batch = read_all(path, TAOBAO)
    assert batch.labels.tolist() == [1.0, 0.0]
    assert batch.dense.shape == (2, 0)
    columns = batch.feed(TAOBAO)
    assert set(columns) == set(TAOBAO.sparse)
    assert "tag_category_list" not in columns
    assert columns["user_id"].tolist() == [b"1260", b"572128"]
    assert columns["price"].tolist() == [b"811", b"59"]
