"""Wide & Deep (Cheng et al., 2016): a linear model over sparse features and crosses, plus a DNN."""

from __future__ import annotations

from modelzoo.layers import embed, hashed_ids, log_dense, mlp
from modelzoo.models.features import Features
from modelzoo.tfcompat import tf


def build(features: Features, config: dict) -> tf.Tensor:
    buckets, dim = config["hash_buckets"], config["embedding_dim"]
    sparse = features.sparse()
    ids = hashed_ids(sparse, buckets)
    dense = log_dense(features.dense())
    # Wide part: one weight per category, per dense value, and per configured cross.
    crosses = [
        tf.string_join([features.columns[a], features.columns[b]], separator="_x_") for a, b in config["wide_crosses"]
    ]
    wide_ids = hashed_ids(sparse + crosses, buckets)
    wide = tf.reduce_sum(embed("wide_weights", wide_ids, buckets * len(sparse + crosses), 1), axis=[1, 2])
    wide += tf.squeeze(mlp("wide_dense", dense, [], output=1), axis=1)
    # Deep part: embeddings and dense values through ReLU layers.
    vectors = embed("embeddings", ids, buckets * len(sparse), dim)
    deep_in = tf.concat([tf.reshape(vectors, [-1, len(sparse) * dim]), dense], axis=1)
    deep = tf.squeeze(mlp("deep", deep_in, config["deep_hidden"], output=1), axis=1)
    return wide + deep
