"""DSSM (Huang et al., 2013) as a two-tower recommender: a user tower and an item tower map their
fields to vectors whose cosine similarity, scaled, is the click logit."""

from __future__ import annotations

from modelzoo.layers import embed, hashed_ids, mlp
from modelzoo.models.features import Features
from modelzoo.tfcompat import tf


def tower(name: str, features: Features, fields: list[str], config: dict) -> tf.Tensor:
    buckets, dim = config["hash_buckets"], config["embedding_dim"]
    with tf.variable_scope(name):
        vectors = embed("embeddings", hashed_ids(features.sparse(fields), buckets), buckets * len(fields), dim)
        flat = tf.reshape(vectors, [-1, len(fields) * dim])
        hidden = config["tower_hidden"]
        # The last layer is linear: a ReLU there can zero the whole vector and with it the cosine.
        return tf.nn.l2_normalize(mlp("mlp", flat, hidden[:-1], output=hidden[-1]), axis=1)


def build(features: Features, config: dict) -> tf.Tensor:
    user = tower("user_tower", features, config["user_fields"], config)
    item = tower("item_tower", features, config["item_fields"], config)
    cosine = tf.reduce_sum(user * item, axis=1)
    # A learned scale and offset turn a cosine in [-1, 1] into a usable click log-odds.
    scale = tf.get_variable("scale", shape=[], initializer=tf.constant_initializer(config["initial_scale"]))
    offset = tf.get_variable("offset", shape=[], initializer=tf.zeros_initializer())
    return scale * cosine + offset
