"""Benchmark: training throughput and in-process inference throughput of the five exported models.

Trains each model for one epoch on generated data, exports it, then times the SavedModel's
serving signature at batch 64, 256 and 512 with fixed intra/inter threads, in one run, and
prints infer/s and each model's ratio to DLRM (the seed benchmark's reference model).
Asserts nothing about speed. Run inside .venv: python benchmarks/model_throughput.py [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from modelzoo.config import MODEL_NAMES, dataset_of, load_config
from modelzoo.export import export
from modelzoo.generate import generate
from modelzoo.graph import session_config
from modelzoo.readers import read_all
from modelzoo.tfcompat import tf
from modelzoo.train import train

BATCHES = (64, 256, 512)


def inference_rate(
    export_dir: Path, rows: dict[str, np.ndarray], batch: int, intra: int, inter: int, seconds: float
) -> float:
    with tf.Graph().as_default(), tf.Session(config=session_config(intra, inter)) as session:
        meta = tf.saved_model.loader.load(session, ["serve"], str(export_dir))
        signature = meta.signature_def["serving_default"]
        output = signature.outputs["probabilities"].name
        feeds = []
        total = len(next(iter(rows.values())))
        for start in range(0, total - batch + 1, batch):
            feeds.append({signature.inputs[k].name: v[start : start + batch].reshape(-1, 1) for k, v in rows.items()})
        for feed in feeds[:3]:  # warm-up
            session.run(output, feed)
        done, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            session.run(output, feeds[done % len(feeds)])
            done += 1
        return done * batch / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000, help="training rows per model")
    parser.add_argument("--intra", type=int, default=2)
    parser.add_argument("--inter", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per point")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for model in MODEL_NAMES:
            config = load_config(model)
            dataset = dataset_of(config)
            train_file, eval_file = root / f"{dataset.name}_train.csv", root / f"{dataset.name}_eval.csv"
            if not train_file.exists():
                generate(dataset.name, train_file, args.rows, seed=1)
                generate(dataset.name, eval_file, 8192, seed=2)
            result = train(
                model,
                train_file,
                root / "out",
                eval_file,
                batch_size=256,
                epochs=1,
                intra=args.intra,
                inter=args.inter,
                log=lambda _: None,
            )
            export_dir = export(model, root / "out")
            rows = read_all(eval_file, dataset).feed(dataset)
            results[model] = {"train": result.record["throughput_examples_per_s"], "auc": result.record["eval"]["auc"]}
            for batch in BATCHES:
                results[model][f"b{batch}"] = inference_rate(
                    export_dir, rows, batch, args.intra, args.inter, args.seconds
                )
            print(f"measured {model}", file=sys.stderr, flush=True)
    print(f"TensorFlow {tf.__version__}, intra {args.intra}, inter {args.inter}, {args.rows} training rows")
    header = f"{'model':<14}{'train ex/s':>12}{'AUC':>7}" + "".join(f"{'b' + str(b) + ' inf/s':>13}" for b in BATCHES)
    header += "".join(f"{'b' + str(b) + '/DLRM':>11}" for b in BATCHES)
    print(header)
    for model, r in results.items():
        line = f"{model:<14}{r['train']:>12,.0f}{r['auc']:>7.3f}"
        line += "".join(f"{r[f'b{b}']:>13,.0f}" for b in BATCHES)
        line += "".join(f"{r[f'b{b}'] / results['dlrm'][f'b{b}']:>11.2f}" for b in BATCHES)
        print(line)


if __name__ == "__main__":
    main()
