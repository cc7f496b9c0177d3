"""`python -m modelzoo`: train, evaluate and export the models, make data and perf_analyzer inputs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import facts
from modelzoo.config import MODEL_NAMES, ConfigError, dataset_of, load_config
from modelzoo.generate import FORMATS, generate
from modelzoo.readers import LAYOUTS, DataError
from modelzoo.schema import DATASETS


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def threads(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("thread counts are 0 (TensorFlow decides) or more")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m modelzoo", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, choices=MODEL_NAMES)
        p.add_argument("--output", required=True, type=Path, help="directory holding <model>/ (checkpoint, exports)")

    def data_args(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument("--layout", default="auto", choices=LAYOUTS, help="data file layout (default: detect)")
        p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")
        p.add_argument("--intra", type=threads, default=0, help="intra-op threads (0: TensorFlow decides)")
        p.add_argument("--inter", type=threads, default=0, help="inter-op threads (0: TensorFlow decides)")

    train = sub.add_parser("train", help=f"train a model and write {facts.TRAIN_RECORD_NAME}")
    model_args(train)
    train.add_argument("--data", required=True, type=Path)
    train.add_argument("--eval-data", type=Path)
    train.add_argument("--batch-size", type=positive)
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive)
    budget.add_argument("--epochs", type=positive)
    train.add_argument("--seed", type=int, default=0)
    data_args(train, True)

    evaluate = sub.add_parser("eval", help="AUC and log loss of a trained model")
    model_args(evaluate)
    evaluate.add_argument("--eval-data", "--data", dest="eval_data", required=True, type=Path)
    data_args(evaluate, True)

    export = sub.add_parser("export", help="write <output>/<model>/<version>/ for TF-Serving")
    model_args(export)
    export.add_argument("--version", type=positive, help="default: one more than the highest existing")

    gen = sub.add_parser("gen-data", help="generate data with a planted signal")
    target = gen.add_mutually_exclusive_group(required=True)
    target.add_argument("--dataset", choices=list(DATASETS))
    target.add_argument("--model", choices=MODEL_NAMES, help="generate the data set MODEL trains on")
    gen.add_argument("--output", required=True, type=Path, help="file to write")
    gen.add_argument("--rows", required=True, type=positive)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--layout", default="csv", choices=sorted({f for fs in FORMATS.values() for f in fs}))

    perf = sub.add_parser("perf-input", help="perf_analyzer --input-data JSON of real rows")
    perf.add_argument("--model", required=True, choices=MODEL_NAMES)
    perf.add_argument("--eval-data", "--data", dest="eval_data", required=True, type=Path)
    perf.add_argument("--output", required=True, type=Path, help="JSON file to write")
    perf.add_argument("--rows", type=positive, default=512)
    perf.add_argument("--layout", default="auto", choices=LAYOUTS)
    perf.add_argument("--skip-bad-rows", action="store_true")
    return top


def run(args: argparse.Namespace) -> int:
    if args.command == "gen-data":
        dataset = args.dataset or load_config(args.model)["dataset"]
        written = 0

        def progress(n: int) -> None:
            nonlocal written
            written += n
            if written % 200_000 < n or written == args.rows:
                log(f"gen-data: {written:,}/{args.rows:,} rows")

        generate(dataset, args.output, args.rows, args.seed, args.layout, progress)
        log(f"gen-data: wrote {args.output}")
        return 0
    if args.command == "perf-input":
        from modelzoo.perf_input import write_perf_input

        count = write_perf_input(
            args.eval_data, dataset_of(load_config(args.model)), args.output, args.rows, args.layout, args.skip_bad_rows
        )
        log(f"perf-input: {count} rows into {args.output}")
        return 0
    # TensorFlow is imported only by the commands that need it (it takes seconds).
    if args.command == "train":
        from modelzoo.train import train

        train(
            args.model,
            args.data,
            args.output,
            args.eval_data,
            args.batch_size,
            args.steps,
            args.epochs,
            args.intra,
            args.inter,
            args.seed,
            args.layout,
            args.skip_bad_rows,
            log,
        )
    elif args.command == "eval":
        from modelzoo.train import evaluate

        result = evaluate(
            args.model, args.output, args.eval_data, args.layout, args.skip_bad_rows, args.intra, args.inter
        )
        print(json.dumps(result, indent=2))
    elif args.command == "export":
        from modelzoo.export import export

        log(f"export: wrote {export(args.model, args.output, args.version)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (DataError, ConfigError, FileNotFoundError, ValueError) as err:
        print(f"modelzoo: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # ExportError and TensorFlow's own errors
        print(f"modelzoo: {err}", file=sys.stderr)
        return 1
