"""DeepFM (Guo et al., 2017): first- and second-order factorisation machine plus a DNN, all sharing
one set of embeddings. Dense features are fields too: their vector is value x a learned vector."""

from __future__ import annotations

from modelzoo.layers import embed, hashed_ids, log_dense, mlp
from modelzoo.models.features import Features
from modelzoo.tfcompat import tf


def field_vectors(
    features: Features, config: dict, dim: int, name: str, sparse_names: list[str] | None = None
) -> tf.Tensor:
    """[B, fields, dim]: embeddings of the sparse fields (all, or SPARSE_NAMES) and dense value-scaled vectors."""
    buckets = config["hash_buckets"]
    sparse = features.sparse(sparse_names)
    vectors = embed(name, hashed_ids(sparse, buckets), buckets * len(sparse), dim)
    if features.dataset.dense:
        dense = log_dense(features.dense())  # [B, D]
        dense_vectors = tf.get_variable(
            f"{name}_dense",
            shape=[len(features.dataset.dense), dim],
            initializer=tf.truncated_normal_initializer(stddev=0.05),
        )
        vectors = tf.concat([vectors, tf.expand_dims(dense, 2) * dense_vectors], axis=1)
    return vectors


def build(features: Features, config: dict) -> tf.Tensor:
    dim = config["embedding_dim"]
    first_order = tf.reduce_sum(field_vectors(features, config, 1, "first_order"), axis=[1, 2])
    vectors = field_vectors(features, config, dim, "embeddings")  # [B, F, dim]
    square_of_sum = tf.square(tf.reduce_sum(vectors, axis=1))
    sum_of_squares = tf.reduce_sum(tf.square(vectors), axis=1)
    second_order = 0.5 * tf.reduce_sum(square_of_sum - sum_of_squares, axis=1)
    fields = int(vectors.shape[1])
    deep = tf.squeeze(mlp("dnn", tf.reshape(vectors, [-1, fields * dim]), config["dnn_hidden"], output=1), axis=1)
    bias = tf.get_variable("bias", shape=[], initializer=tf.zeros_initializer())
    return bias + first_order + second_order + deep
