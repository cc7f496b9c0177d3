"""Graph building blocks shared by the models (tf.compat.v1 only, no Keras)."""

from __future__ import annotations

from modelzoo.tfcompat import tf


def hashed_ids(columns: list[tf.Tensor], buckets: int) -> tf.Tensor:
    """[B, F] ids: each string column hashed into its own block of BUCKETS rows of one table.

    One table with per-field blocks is the same model as one table per field (the seed's
    `C*` hash bucket 10000) and needs one lookup instead of F.
    """
    ids = [
        tf.string_to_hash_bucket_fast(column, buckets) + tf.constant(field * buckets, dtype=tf.int64)
        for field, column in enumerate(columns)
    ]
    return tf.stack(ids, axis=1)


def embed(name: str, ids: tf.Tensor, rows: int, dim: int, stddev: float = 0.05) -> tf.Tensor:
    """Look IDS up in a [ROWS, DIM] table: [..., DIM]."""
    table = tf.get_variable(name, shape=[rows, dim], initializer=tf.truncated_normal_initializer(stddev=stddev))
    return tf.nn.embedding_lookup(table, ids)


def dense(name: str, x: tf.Tensor, units: int, activation: object = None) -> tf.Tensor:
    with tf.variable_scope(name):
        width = x.shape[-1]
        kernel = tf.get_variable("kernel", shape=[width, units], initializer=tf.glorot_uniform_initializer())
        bias = tf.get_variable("bias", shape=[units], initializer=tf.zeros_initializer())
        y = tf.matmul(x, kernel) + bias
    return activation(y) if activation is not None else y


def mlp(name: str, x: tf.Tensor, hidden: list[int], output: int | None = None) -> tf.Tensor:
    """ReLU layers of HIDDEN units, then an optional linear layer of OUTPUT units."""
    with tf.variable_scope(name):
        for i, units in enumerate(hidden):
            x = dense(f"layer{i}", x, units, tf.nn.relu)
        if output is not None:
            x = dense("output", x, output)
    return x


def log_dense(columns: list[tf.Tensor]) -> tf.Tensor:
    """[B, D] from raw counts: log1p of the non-negative part, so huge counts do not dominate."""
    stacked = tf.stack(columns, axis=1)
    return tf.log1p(tf.maximum(stacked, 0.0))


def pairwise_dot(vectors: tf.Tensor) -> tf.Tensor:
    """[B, F, D] -> [B, F*(F-1)/2]: every distinct pair's dot product (DLRM's interaction)."""
    fields = int(vectors.shape[1])
    return distinct_pairs(tf.matmul(vectors, vectors, transpose_b=True), fields)


def distinct_pairs(gram: tf.Tensor, fields: int) -> tf.Tensor:
    """[B, F, F] pairwise scores -> [B, F*(F-1)/2]: the entries above the diagonal, one per pair."""
    upper = [i * fields + j for i in range(fields) for j in range(i + 1, fields)]
    return tf.gather(tf.reshape(gram, [-1, fields * fields]), upper, axis=1)
