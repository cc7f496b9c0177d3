"""One model's TensorFlow graph: raw-column placeholders, the model, loss and training op."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelzoo.config import dataset_of
from modelzoo.models import BUILDERS
from modelzoo.models.features import Features
from modelzoo.readers import Batch
from modelzoo.schema import Dataset
from modelzoo.tfcompat import tf

OUTPUT_NAME = "probabilities"


@dataclass
class ModelGraph:
    graph: tf.Graph
    dataset: Dataset
    inputs: dict[str, tf.Tensor]
    label: tf.Tensor
    probabilities: tf.Tensor
    loss: tf.Tensor
    train_op: tf.Operation | None
    model_variables: list[tf.Variable]

    def feed(self, batch: Batch, with_label: bool = True) -> dict[tf.Tensor, np.ndarray]:
        columns = batch.feed(self.dataset)
        feed = {self.inputs[name]: columns[name].reshape(-1, 1) for name in self.inputs}
        if with_label:
            feed[self.label] = batch.labels
        return feed


def _optimizer(config: dict) -> tf.train.Optimizer:
    rate = config["learning_rate"]
    if config["optimizer"] == "adam":
        return tf.train.AdamOptimizer(rate)
    if config["optimizer"] == "adagrad":
        return tf.train.AdagradOptimizer(rate)
    return tf.train.GradientDescentOptimizer(rate)


def build_graph(config: dict, seed: int, training: bool) -> ModelGraph:
    """The graph of CONFIG's model; with TRAINING, also its optimizer."""
    dataset = dataset_of(config)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        # [batch, 1] per column: perf_analyzer sends real-data (--input-data JSON) batches only to
        # inputs with a dimension after the batch one; rank-1 inputs work with random data alone.
        inputs = {name: tf.placeholder(tf.float32, [None, 1], name=name) for name in dataset.dense}
        inputs.update({name: tf.placeholder(tf.string, [None, 1], name=name) for name in dataset.sparse})
        label = tf.placeholder(tf.float32, [None], name="label")
        columns = {name: tf.reshape(placeholder, [-1]) for name, placeholder in inputs.items()}
        with tf.variable_scope(config["model"]):
            logits = BUILDERS[config["model"]](Features(dataset, columns), config)
        probabilities = tf.sigmoid(logits, name=OUTPUT_NAME)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logits))
        model_variables = tf.global_variables()
        train_op = None
        if training:
            step = tf.train.get_or_create_global_step()
            train_op = _optimizer(config).minimize(loss, global_step=step)
    return ModelGraph(graph, dataset, inputs, label, probabilities, loss, train_op, model_variables)


def session_config(intra: int, inter: int) -> tf.ConfigProto:
    return tf.ConfigProto(intra_op_parallelism_threads=intra, inter_op_parallelism_threads=inter)
