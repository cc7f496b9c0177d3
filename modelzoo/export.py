"""Export a trained checkpoint as a SavedModel that TF-Serving serves, with a model card."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from bench import facts
from bench.records import ModelCard
from modelzoo import __version__
from modelzoo.graph import OUTPUT_NAME, build_graph
from modelzoo.tfcompat import tf
from modelzoo.train import checkpoint_prefix, model_dir, record_path

SIGNATURE = "serving_default"


class ExportError(RuntimeError):
    """Nothing to export, or the target exists; the message says which."""


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.exists() else []
    return max(versions, default=0) + 1


def _tensor_spec(tensor: tf.Tensor) -> dict[str, object]:
    return {
        "name": tensor.op.name,
        "dtype": tensor.dtype.name,
        "shape": [d if d is not None else -1 for d in tensor.shape.as_list()],
    }


def export(model: str, output: Path, version: int | None = None) -> Path:
    """Write <output>/<model>/<version>/ from the checkpoint `train` left in OUTPUT. Returns that path."""
    output = Path(output)
    record_file = record_path(output, model)
    if not record_file.is_file():
        raise ExportError(f"{record_file}: no training record; run `train --model {model} --output {output}` first")
    record = json.loads(record_file.read_text())
    config = record["hyperparameters"]
    base = model_dir(output, model)
    version = version if version is not None else next_version(base)
    target = base / str(version)
    if target.exists():
        raise ExportError(f"{target} exists; versions are never overwritten")
    staging = base / f".export-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    graph = build_graph(config, record["seed"], training=False)
    with graph.graph.as_default(), tf.Session() as session:
        tf.train.Saver(var_list=graph.model_variables).restore(session, str(checkpoint_prefix(output, model)))
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            inputs=graph.inputs, outputs={OUTPUT_NAME: graph.probabilities}
        )
        builder = tf.saved_model.builder.SavedModelBuilder(str(staging))
        builder.add_meta_graph_and_variables(
            session,
            [tf.saved_model.tag_constants.SERVING],
            signature_def_map={SIGNATURE: signature},
            strip_default_attrs=True,
        )
        builder.save()
    card = {
        "model": model,
        "version": version,
        "signature": SIGNATURE,
        "inputs": {name: _tensor_spec(t) for name, t in graph.inputs.items()},
        "output": {OUTPUT_NAME: {**_tensor_spec(graph.probabilities), "meaning": "click probability"}},
        "dataset": record["dataset"],
        "data": record["data"],
        "metrics": record["eval"],
        "training": {k: record[k] for k in ("steps", "batch_size", "examples", "throughput_examples_per_s", "seed")},
        "hyperparameters": config,
        "versions": {**record["versions"], "exported_with_tensorflow": tf.__version__, "modelzoo": __version__},
        "exported_at": datetime.now(UTC).isoformat(),
    }
    (staging / facts.MODEL_CARD_NAME).write_text(ModelCard.from_json(card).to_text())  # checked by the contract
    staging.rename(target)  # TF-Serving never sees a half-written version
    return target
