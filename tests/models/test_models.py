"""The five models for real: they learn, export, reload and predict the same, on every layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelzoo.config import MODEL_NAMES, dataset_of, load_config
from modelzoo.export import ExportError, export
from modelzoo.readers import DataError, read_all
from modelzoo.tfcompat import tf
from modelzoo.train import train
from tests.conftest import REPO
from tests.criteo_layouts import SAMPLE, write_layouts

pytestmark = pytest.mark.models

CRITEO_MODELS = [m for m in MODEL_NAMES if m != "dssm"]


def quiet(_: str) -> None:
    pass


def predict_saved_model(export_dir: Path, rows: dict[str, np.ndarray]) -> np.ndarray:
    """Load the SavedModel in a fresh graph and run its serving signature."""
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, [tf.saved_model.tag_constants.SERVING], str(export_dir))
        signature = meta.signature_def["serving_default"]
        feed = {signature.inputs[name].name: values.reshape(-1, 1) for name, values in rows.items()}
        return session.run(signature.outputs["probabilities"].name, feed)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_learns_the_planted_signal_and_exports_what_it_learned(
    model: str, generated: dict[str, Path], tmp_path: Path
) -> None:
    prefix = "taobao" if model == "dssm" else "criteo"
    result = train(
        model,
        generated[f"{prefix}_train"],
        tmp_path,
        generated[f"{prefix}_eval"],
        batch_size=256,
        epochs=1,
        seed=0,
        log=quiet,
    )
    record = result.record
    assert record["eval"]["auc"] >= 0.70, record["eval"]
    assert record["throughput_examples_per_s"] > 0
    assert record["examples"] == (200_000 if model == "dssm" else 100_000)
    assert record["versions"]["tensorflow"] == tf.__version__
    saved = json.loads((tmp_path / model / "train_record.json").read_text())
    assert saved["eval"]["auc"] == record["eval"]["auc"]

    version_dir = export(model, tmp_path)
    assert version_dir == tmp_path / model / "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables").is_dir()

    # The reloaded export predicts what the training session predicted.
    dataset = dataset_of(load_config(model))
    eval_rows = read_all(generated[f"{prefix}_eval"], dataset)
    reloaded = predict_saved_model(version_dir, eval_rows.feed(dataset))
    np.testing.assert_allclose(reloaded, result.eval_predictions, atol=1e-6, rtol=0)

    # The model card describes the signature as it is.
    card = json.loads((version_dir / "model_card.json").read_text())
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, ["serve"], str(version_dir))
    signature = meta.signature_def["serving_default"]
    assert set(card["inputs"]) == set(signature.inputs) == set(dataset.inputs)
    for name, spec in card["inputs"].items():
        info = signature.inputs[name]
        assert spec["dtype"] == tf.as_dtype(info.dtype).name
        assert spec["shape"] == [d.size for d in info.tensor_shape.dim] == [-1, 1]
        assert spec["dtype"] == ("float32" if name in dataset.dense else "string")
    assert list(card["output"]) == list(signature.outputs) == ["probabilities"]
    assert card["metrics"]["auc"] == record["eval"]["auc"]


# The readers give the same batches for the three layouts (tests/unit/test_readers.py): each Criteo model
# trains on one layout, and every layout feeds a model end to end, without the full product's 12 trainings.
LAYOUT_OF = dict(zip(CRITEO_MODELS, ["csv-header", "csv", "kaggle", "csv-header"], strict=True))


@pytest.mark.parametrize("model", CRITEO_MODELS)
def test_trains_and_exports_on_a_criteo_layout(model: str, tmp_path: Path) -> None:
    assert set(LAYOUT_OF.values()) == {"csv-header", "csv", "kaggle"}
    path = write_layouts(tmp_path / "data")[LAYOUT_OF[model]]
    result = train(model, path, tmp_path / "out", path, batch_size=64, steps=4, seed=1, log=quiet)
    assert result.record["steps"] == 4
    assert result.record["eval"]["rows"] == 200
    assert 0.0 <= result.record["eval"]["auc"] <= 1.0
    assert (export(model, tmp_path / "out") / "saved_model.pb").is_file()


def test_dssm_trains_and_exports_on_generated_taobao(generated: dict[str, Path], tmp_path: Path) -> None:
    result = train("dssm", generated["taobao_eval"], tmp_path, batch_size=64, steps=4, log=quiet)
    assert result.record["dataset"] == "taobao"
    assert (export("dssm", tmp_path) / "saved_model.pb").is_file()


def test_the_same_seed_gives_the_same_model(generated: dict[str, Path], tmp_path: Path) -> None:
    def run(seed: int, out: str) -> np.ndarray:
        return train(
            "deepfm",
            generated["criteo_eval"],
            tmp_path / out,
            generated["criteo_eval"],
            batch_size=128,
            steps=30,
            intra=1,
            inter=1,
            seed=seed,
            log=quiet,
        ).eval_predictions

    first, again, other = run(5, "a"), run(5, "b"), run(6, "c")
    np.testing.assert_allclose(first, again, atol=1e-6, rtol=0)
    assert np.abs(first - other).max() > 1e-3


def test_export_never_overwrites_and_needs_a_trained_model(generated: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no training record"):
        export("dlrm", tmp_path)
    train("dlrm", generated["criteo_eval"], tmp_path, batch_size=128, steps=2, log=quiet)
    export("dlrm", tmp_path, version=3)
    with pytest.raises(ExportError, match="versions are never overwritten"):
        export("dlrm", tmp_path, version=3)
    assert export("dlrm", tmp_path).name == "4"


def test_skipped_rows_are_counted_in_the_record(tmp_path: Path) -> None:
    lines = SAMPLE.read_text().splitlines()
    lines[10] = lines[10].replace(",", ",,", 1)  # one field too many
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad.csv:11: expected 40 fields, found 41"):
        train("dlrm", path, tmp_path / "out", steps=2, log=quiet)
    record = train("dlrm", path, tmp_path / "out", steps=2, skip_bad_rows=True, log=quiet).record
    assert record["data"]["skipped_bad_rows"] == 1
    assert record["data"]["rows"] == 199


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelzoo", *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def test_cli_end_to_end(tmp_path: Path) -> None:
    data = write_layouts(tmp_path / "data")["kaggle"]
    out = tmp_path / "out"
    trained = cli(
        "train",
        "--model",
        "wide_and_deep",
        "--data",
        str(data),
        "--eval-data",
        str(data),
        "--output",
        str(out),
        "--steps",
        "3",
        "--batch-size",
        "32",
        "--intra",
        "1",
        "--inter",
        "1",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "examples/s" in trained.stderr
    record = json.loads((out / "wide_and_deep" / "train_record.json").read_text())
    assert record["threads"] == {"intra_op": 1, "inter_op": 1}
    assert cli("export", "--model", "wide_and_deep", "--output", str(out)).returncode == 0
    evaluated = cli("eval", "--model", "wide_and_deep", "--output", str(out), "--eval-data", str(data))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["rows"] == 200
    perf = cli(
        "perf-input",
        "--model",
        "wide_and_deep",
        "--eval-data",
        str(data),
        "--output",
        str(tmp_path / "perf.json"),
        "--rows",
        "16",
    )
    assert perf.returncode == 0, perf.stderr
    entries = json.loads((tmp_path / "perf.json").read_text())["data"]
    assert len(entries) == 16
    assert entries[0]["C1"] == ["05db9164"]  # the sample's first row, not random bytes
    assert entries[0]["I3"] == [260.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "file is empty"), ("0,1,2\n", "expected 40 fields, found 3")],
)
def test_cli_bad_data_is_a_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    proc = cli("train", "--model", "dlrm", "--data", str(path), "--output", str(tmp_path / "out"), "--steps", "1")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("modelzoo: ") and message in last
    assert not (tmp_path / "out" / "dlrm" / "train_record.json").exists()
