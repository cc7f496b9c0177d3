"""DLRM (Naumov et al., 2019): bottom MLP for dense features, embeddings, pairwise dot interaction,
top MLP. Sizes as in the seed benchmark: bottom 512-256-64-16, top 512-256."""

from __future__ import annotations

from modelzoo.layers import embed, hashed_ids, log_dense, mlp, pairwise_dot
from modelzoo.models.features import Features
from modelzoo.tfcompat import tf


def build(features: Features, config: dict) -> tf.Tensor:
    buckets, dim = config["hash_buckets"], config["embedding_dim"]
    bottom = config["bottom_mlp"]
    if bottom[-1] != dim:
        raise ValueError(f"dlrm: the bottom MLP must end in embedding_dim ({dim}), not {bottom[-1]}")
    sparse = features.sparse()
    dense_vector = mlp("bottom", log_dense(features.dense()), bottom)  # [B, dim]
    vectors = embed("embeddings", hashed_ids(sparse, buckets), buckets * len(sparse), dim)
    everything = tf.concat([tf.expand_dims(dense_vector, 1), vectors], axis=1)  # [B, 1 + F, dim]
    top_in = tf.concat([dense_vector, pairwise_dot(everything)], axis=1)
    return tf.squeeze(mlp("top", top_in, config["top_mlp"], output=1), axis=1)
