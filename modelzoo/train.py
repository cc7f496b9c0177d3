"""Training and evaluation: the seed's step 1, with a record of what was measured and how."""

from __future__ import annotations

import json
import math
import platform
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import facts
from bench.records import TrainerRecord
from modelzoo import __version__
from modelzoo.config import dataset_of, load_config
from modelzoo.graph import ModelGraph, build_graph, session_config
from modelzoo.metrics import auc, log_loss
from modelzoo.readers import Batch, ReadStats, iter_batches
from modelzoo.schema import Dataset
from modelzoo.tfcompat import tf

SHUFFLE_BATCHES = 32
PREDICT_BATCH = 4096

Log = Callable[[str], None]


@dataclass
class TrainResult:
    record: dict
    eval_labels: np.ndarray | None
    eval_predictions: np.ndarray | None


def model_dir(output: Path, model: str) -> Path:
    return Path(output) / model


def checkpoint_prefix(output: Path, model: str) -> Path:
    return model_dir(output, model) / "train" / "model.ckpt"


def record_path(output: Path, model: str) -> Path:
    return model_dir(output, model) / facts.TRAIN_RECORD_NAME


def shuffled(batches: Iterator[Batch], rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
    """Shuffle rows within windows of SHUFFLE_BATCHES batches: streaming, yet not in file order."""
    window: list[Batch] = []

    def flush() -> Iterator[Batch]:
        labels = np.concatenate([b.labels for b in window])
        dense = np.concatenate([b.dense for b in window])
        sparse = np.concatenate([b.sparse for b in window])
        order = rng.permutation(len(labels))
        for start in range(0, len(order), batch_size):
            pick = order[start : start + batch_size]
            yield Batch(labels[pick], dense[pick], sparse[pick])

    for batch in batches:
        window.append(batch)
        if len(window) == SHUFFLE_BATCHES:
            yield from flush()
            window = []
    if window:
        yield from flush()


def predict(
    session: tf.Session,
    graph: ModelGraph,
    path: Path,
    dataset: Dataset,
    layout: str,
    skip_bad_rows: bool,
    stats: ReadStats,
) -> tuple[np.ndarray, np.ndarray]:
    labels, predictions = [], []
    for batch in iter_batches(path, dataset, PREDICT_BATCH, layout, skip_bad_rows, stats):
        labels.append(batch.labels)
        predictions.append(session.run(graph.probabilities, graph.feed(batch, with_label=False)))
    return np.concatenate(labels), np.concatenate(predictions)


def train(
    model: str,
    data: Path,
    output: Path,
    eval_data: Path | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    intra: int = 0,
    inter: int = 0,
    seed: int = 0,
    layout: str = "auto",
    skip_bad_rows: bool = False,
    log: Log = print,
) -> TrainResult:
    config = load_config(model)
    dataset = dataset_of(config)
    batch_size = batch_size or config["batch_size"]
    if steps is None and epochs is None:
        epochs = 1
    graph = build_graph(config, seed, training=True)
    rng = np.random.default_rng(seed)
    stats = ReadStats()
    losses: list[float] = []
    examples = 0
    step = 0
    started_at = datetime.now(UTC)
    with graph.graph.as_default(), tf.Session(config=session_config(intra, inter)) as session:
        session.run(tf.global_variables_initializer())
        start = time.perf_counter()
        last_report = start
        epoch = 0
        while (epochs is None or epoch < epochs) and (steps is None or step < steps):
            epoch_stats = ReadStats()
            for batch in shuffled(
                iter_batches(data, dataset, batch_size, layout, skip_bad_rows, epoch_stats), rng, batch_size
            ):
                _, loss = session.run([graph.train_op, graph.loss], graph.feed(batch))
                losses.append(float(loss))
                examples += len(batch)
                step += 1
                now = time.perf_counter()
                if now - last_report >= 5 or step == steps:
                    total = f"/{steps}" if steps else ""
                    log(
                        f"{model}: epoch {epoch + 1} step {step}{total} loss {np.mean(losses[-50:]):.4f} "
                        f"{examples / (now - start):,.0f} examples/s"
                    )
                    last_report = now
                if steps is not None and step >= steps:
                    break
            if epoch == 0:
                stats = epoch_stats
            epoch += 1
        seconds = time.perf_counter() - start
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"{model}: training diverged (loss {losses[-1]})")
        prefix = checkpoint_prefix(output, model)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        tf.train.Saver(var_list=graph.model_variables).save(session, str(prefix))
        eval_labels = eval_predictions = None
        eval_record: dict[str, object] | None = None
        if eval_data is not None:
            eval_stats = ReadStats()
            eval_labels, eval_predictions = predict(
                session, graph, Path(eval_data), dataset, layout, skip_bad_rows, eval_stats
            )
            eval_record = {
                "data": str(eval_data),
                "auc": _finite(auc(eval_labels, eval_predictions)),  # one class only: no AUC
                "log_loss": _finite(log_loss(eval_labels, eval_predictions)),
                **eval_stats.as_record(),
            }
            log(f"{model}: eval AUC {eval_record['auc']} log loss {eval_record['log_loss']} on {eval_stats.rows} rows")
    record = {
        "model": model,
        "dataset": dataset.name,
        "data": {"train": str(data), "layout": layout, **stats.as_record()},
        "eval": eval_record,
        "steps": step,
        "epochs_completed": epoch if steps is None else None,
        "batch_size": batch_size,
        "examples": examples,
        "seconds": seconds,
        "throughput_examples_per_s": examples / seconds if seconds > 0 else None,
        "final_loss": _finite(float(np.mean(losses[-50:]))) if losses else None,
        "seed": seed,
        "threads": {"intra_op": intra, "inter_op": inter},
        "hyperparameters": config,
        "versions": {"tensorflow": tf.__version__, "modelzoo": __version__, "python": platform.python_version()},
        "host": {"name": socket.gethostname(), "arch": platform.machine()},
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    path = record_path(output, model)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(TrainerRecord.from_json(record).to_text())  # the results contract checks it first
    tmp.replace(path)
    log(f"{model}: {step} steps, {record['throughput_examples_per_s']:,.0f} examples/s; record {path}")
    return TrainResult(record, eval_labels, eval_predictions)


def _finite(value: float) -> float | None:
    """A diverged training's loss is NaN: the record says null rather than a number JSON has not."""
    return value if math.isfinite(value) else None


def evaluate(
    model: str,
    output: Path,
    eval_data: Path,
    layout: str = "auto",
    skip_bad_rows: bool = False,
    intra: int = 0,
    inter: int = 0,
) -> dict[str, object]:
    """AUC and log loss of the checkpoint `train` left in OUTPUT on EVAL_DATA."""
    record_file = record_path(output, model)
    if not record_file.is_file():
        raise FileNotFoundError(f"{record_file}: no training record; train {model} into {output} first")
    record = json.loads(record_file.read_text())
    config = record["hyperparameters"]
    graph = build_graph(config, record["seed"], training=False)
    stats = ReadStats()
    with graph.graph.as_default(), tf.Session(config=session_config(intra, inter)) as session:
        tf.train.Saver(var_list=graph.model_variables).restore(session, str(checkpoint_prefix(output, model)))
        labels, predictions = predict(session, graph, Path(eval_data), dataset_of(config), layout, skip_bad_rows, stats)
    return {
        "model": model,
        "data": str(eval_data),
        "auc": auc(labels, predictions),
        "log_loss": log_loss(labels, predictions),
        **stats.as_record(),
    }
