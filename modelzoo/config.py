"""Hyperparameters: one YAML file per model under modelzoo/configs/."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench import facts
from modelzoo.schema import DATASETS, Dataset

CONFIG_DIR = Path(__file__).with_name("configs")
# The models (bench.facts), in the seed's order; each has configs/<name>.yaml and models/<name>.py.
MODEL_NAMES = facts.MODELS
REQUIRED = {"hash_buckets", "embedding_dim", "optimizer", "learning_rate", "batch_size"}
OPTIMIZERS = {"adam", "adagrad", "sgd"}


class ConfigError(ValueError):
    """A hyperparameter file is missing or wrong; the message names the file and the key."""


def load_config(model: str, path: Path | None = None) -> dict:
    path = path or CONFIG_DIR / f"{model}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no hyperparameter file for model {model!r}")
    config = yaml.safe_load(path.read_text()) or {}
    missing = REQUIRED - set(config)
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(sorted(missing))}")
    if model not in MODEL_NAMES:
        raise ConfigError(f"{path}: {model!r} is not one of the models {', '.join(MODEL_NAMES)}")
    if "dataset" in config:
        raise ConfigError(f"{path}: the data set of a model is a fact of bench/facts.py, not a hyperparameter")
    config["dataset"] = facts.dataset_of(model)
    if config["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"{path}: optimizer must be one of {', '.join(sorted(OPTIMIZERS))}")
    for key in ("hash_buckets", "embedding_dim", "batch_size"):
        if not isinstance(config[key], int) or config[key] <= 0:
            raise ConfigError(f"{path}: {key} must be a positive integer")
    config["model"] = model
    return config


def dataset_of(config: dict) -> Dataset:
    return DATASETS[config["dataset"]]
