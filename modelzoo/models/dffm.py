"""DFFM (Domain-Facilitated Feature Modeling, Jia et al., CIKM 2023).

Two parts, both steered by the domain (the fields configured as `domain_fields`):
  DFFI  domain-facilitated feature interaction: a meta network turns the domain embedding into a
        [dim, dim] matrix W_d, and every pair of fields interacts as e_i^T (I + W_d) e_j;
  DFUB  domain-facilitated user behaviour: target attention over the `history_fields`, the
        attention network seeing history, target, their product and difference, and the domain.
The outputs, with the target vector, go through a DNN to the click logit.
"""

from __future__ import annotations

from modelzoo.layers import dense, distinct_pairs, embed, hashed_ids, mlp
from modelzoo.models.deepfm import field_vectors
from modelzoo.models.features import Features
from modelzoo.tfcompat import tf


def _stack(features: Features, config: dict, fields: list[str], name: str) -> tf.Tensor:
    buckets, dim = config["hash_buckets"], config["embedding_dim"]
    return embed(name, hashed_ids(features.sparse(fields), buckets), buckets * len(fields), dim)


def build(features: Features, config: dict) -> tf.Tensor:
    dim = config["embedding_dim"]
    for role in ("domain_fields", "target_fields", "history_fields"):
        unknown = set(config[role]) - set(features.dataset.sparse)
        if unknown or not config[role]:
            raise ValueError(f"dffm: {role} must name categorical columns of {features.dataset.name}: {unknown}")
    domain = tf.reshape(
        _stack(features, config, config["domain_fields"], "domain_embeddings"), [-1, len(config["domain_fields"]) * dim]
    )

    # DFFI over every field (domain fields excluded, they steer instead).
    others = [c for c in features.dataset.sparse if c not in config["domain_fields"]]
    vectors = field_vectors(features, config, dim, "field_embeddings", others)  # [B, F, dim]
    fields = int(vectors.shape[1])
    meta = tf.reshape(dense("dffi_meta", domain, dim * dim), [-1, dim, dim])
    kernel = meta + tf.eye(dim)
    gram = tf.matmul(tf.matmul(vectors, kernel), vectors, transpose_b=True)  # [B, F, F]
    dffi = distinct_pairs(gram, fields)

    # DFUB: domain-aware target attention over the behaviour fields.
    target = tf.reduce_mean(_stack(features, config, config["target_fields"], "target_embeddings"), axis=1)
    history = _stack(features, config, config["history_fields"], "history_embeddings")  # [B, H, dim]
    steps = len(config["history_fields"])
    tiled_target = tf.tile(tf.expand_dims(target, 1), [1, steps, 1])
    tiled_domain = tf.tile(tf.expand_dims(domain, 1), [1, steps, 1])
    attention_in = tf.concat(
        [history, tiled_target, history * tiled_target, history - tiled_target, tiled_domain], axis=2
    )
    width = int(attention_in.shape[2])
    scores = mlp("dfub_attention", tf.reshape(attention_in, [-1, width]), config["attention_hidden"], output=1)
    weights = tf.nn.softmax(tf.reshape(scores, [-1, steps]), axis=1)
    behaviour = tf.reduce_sum(tf.expand_dims(weights, 2) * history, axis=1)  # [B, dim]

    top_in = tf.concat([dffi, behaviour, target, domain, tf.reshape(vectors, [-1, fields * dim])], axis=1)
    return tf.squeeze(mlp("dnn", top_in, config["dnn_hidden"], output=1), axis=1)
