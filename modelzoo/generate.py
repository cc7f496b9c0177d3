"""Deterministic, streaming generators of Criteo- and Taobao-shaped data with a planted signal.

Categories follow heavy-tailed (log-uniform) distributions over each field's real cardinality,
values are written like the real files (8 hex digits for Criteo categories, integers for Taobao),
and the click label depends on a known function of some fields, so a model that learns reaches a
clearly better-than-chance AUC. Rows are produced in chunks: any size can be written in constant
memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from modelzoo.schema import CRITEO_COLUMNS, TAOBAO_COLUMNS

CHUNK_ROWS = 20_000

# Cardinalities of C1..C26 in the Criteo Kaggle training set.
CRITEO_CARDINALITY = [
    1460,
    583,
    10131227,
    2202608,
    305,
    24,
    12517,
    633,
    3,
    93145,
    5683,
    8351593,
    3194,
    27,
    14992,
    5461306,
    10,
    5652,
    2173,
    4,
    7046547,
    18,
    15,
    286181,
    105,
    142572,
]
# Share of empty values per categorical field (the last ones are often missing in the real data).
CRITEO_SPARSE_MISSING = [0.0] * 18 + [0.44, 0.44, 0.0, 0.76, 0.0, 0.04, 0.44, 0.44]
# (log-mean, log-sd, missing share) of I1..I13, roughly the real marginals.
CRITEO_DENSE_SHAPE = [
    (0.8, 1.2, 0.45),
    (2.0, 2.0, 0.0),
    (2.3, 1.4, 0.21),
    (1.6, 1.1, 0.22),
    (8.0, 2.0, 0.03),
    (3.5, 1.8, 0.22),
    (1.5, 1.5, 0.04),
    (2.6, 1.2, 0.0),
    (3.8, 1.5, 0.04),
    (0.4, 0.6, 0.45),
    (1.0, 1.0, 0.04),
    (0.3, 0.8, 0.77),
    (1.9, 1.3, 0.22),
]
# The planted signal: fields whose categories shift the click log-odds, dense terms, a cross.
CRITEO_SIGNAL_FIELDS = [0, 1, 5, 8, 13, 16, 19, 22]  # C1 C2 C6 C9 C14 C17 C20 C23
CRITEO_CROSS = (5, 8)  # C6 x C9
CRITEO_DENSE_WEIGHTS = {0: 0.35, 2: -0.25, 6: 0.2}  # on log1p(I1), log1p(I3), log1p(I7)

TAOBAO_USERS = 1_141_729
TAOBAO_ADGROUPS = 846_811
TAOBAO_CATEGORIES = 6_769
TAOBAO_CLUSTERS = 4


def _mix(a: np.ndarray, salt: int) -> np.ndarray:
    """A fixed 32-bit integer hash (vectorised), so derived values are stable across runs."""
    x = (a.astype(np.uint64) * np.uint64(0x9E3779B1) + np.uint64(salt * 0x85EBCA77 + 1)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x2C1B3C6D)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(12)
    return x


def _effect(ids: np.ndarray, salt: int, strength: float) -> np.ndarray:
    """A pseudo-random effect in [-strength, strength] for each category id."""
    return (_mix(ids, salt).astype(np.float64) / 0xFFFFFFFF * 2.0 - 1.0) * strength


def _log_uniform(rng: np.random.Generator, cardinality: int, n: int) -> np.ndarray:
    """Ids in [0, cardinality) with a heavy head: a few values are common, most are rare."""
    return np.minimum(np.floor(np.exp(rng.random(n) * np.log(cardinality))).astype(np.int64) - 1, cardinality - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def criteo_chunk(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    ids = np.stack([_log_uniform(rng, k, n) for k in CRITEO_CARDINALITY], axis=1)
    dense = np.empty((n, 13))
    dense_missing = np.empty((n, 13), dtype=bool)
    for j, (mu, sd, missing) in enumerate(CRITEO_DENSE_SHAPE):
        dense[:, j] = np.floor(rng.lognormal(mu, sd, n))
        dense_missing[:, j] = rng.random(n) < missing
    dense[:, 1] -= 1  # I2 goes down to -1 in the real data
    logit = np.full(n, -1.4)
    for field in CRITEO_SIGNAL_FIELDS:
        logit += _effect(ids[:, field], 101 + field, 0.9)
    a, b = CRITEO_CROSS
    logit += _effect(ids[:, a] * 7 + ids[:, b], 977, 1.0)
    for j, weight in CRITEO_DENSE_WEIGHTS.items():
        logit += weight * (np.log1p(np.maximum(dense[:, j], 0)) - CRITEO_DENSE_SHAPE[j][0])
    labels = (rng.random(n) < _sigmoid(logit)).astype(np.int64)
    sparse_missing = rng.random((n, 26)) < np.asarray(CRITEO_SPARSE_MISSING)
    return {
        "labels": labels,
        "dense": dense,
        "dense_missing": dense_missing,
        "ids": ids,
        "sparse_missing": sparse_missing,
    }


def criteo_rows(chunk: dict[str, np.ndarray], kaggle_ints: bool) -> Iterator[list[str]]:
    hexes = [_mix(chunk["ids"][:, f], 7000 + f) for f in range(26)]
    for i in range(len(chunk["labels"])):
        row = [str(chunk["labels"][i])]
        for j in range(13):
            if chunk["dense_missing"][i, j]:
                row.append("")
            else:
                value = int(chunk["dense"][i, j])
                row.append(str(value) if kaggle_ints else f"{value}.0")
        for f in range(26):
            row.append("" if chunk["sparse_missing"][i, f] else f"{int(hexes[f][i]):08x}")
        yield row


def taobao_chunk(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    user = _log_uniform(rng, TAOBAO_USERS, n)
    adgroup = _log_uniform(rng, TAOBAO_ADGROUPS, n)
    # A user's profile and an ad's category are functions of their ids, as in a real log.
    age = (_mix(user, 1) % 7).astype(np.int64)
    gender = 1 + (_mix(user, 2) % 2).astype(np.int64)
    cate = _log_uniform(rng, TAOBAO_CATEGORIES, n)
    price = np.floor(rng.lognormal(4.5, 1.5, n)).astype(np.int64) + 1
    pvalue = 1 + (_mix(user, 10) % 3).astype(np.int64)
    shopping = 1 + (_mix(user, 4) % 3).astype(np.int64)
    # The planted signal is user-item affinity, which is what a two-tower model can express:
    # users of a profile cluster click categories of the same cluster, and big spenders (pvalue)
    # click expensive items.
    user_cluster = (age * 2 + gender) % TAOBAO_CLUSTERS
    item_cluster = cate % TAOBAO_CLUSTERS
    price_level = np.clip(np.floor(np.log10(price)), 0, 4)
    logit = -2.4 + 2.8 * (user_cluster == item_cluster) + 0.4 * (pvalue - 2) * (price_level - 2) + 0.3 * (shopping - 2)
    columns = {
        "clk": (rng.random(n) < _sigmoid(logit)).astype(np.int64),
        "pid": np.where(rng.random(n) < 0.5, 430548, 430539),
        "adgroup_id": adgroup + 1,
        "cate_id": cate + 1,
        "campaign_id": (_mix(adgroup, 5) % 423436).astype(np.int64) + 1,
        "customer": (_mix(adgroup, 6) % 255875).astype(np.int64) + 1,
        "brand": (_mix(adgroup, 7) % 99815).astype(np.int64) + 1,
        "user_id": user + 1,
        "cms_segid": (_mix(user, 8) % 97).astype(np.int64),
        "cms_group_id": (_mix(user, 9) % 13).astype(np.int64),
        "final_gender_code": gender,
        "age_level": age,
        "pvalue_level": pvalue,
        "shopping_level": shopping,
        "occupation": (_mix(user, 11) % 2).astype(np.int64),
        "new_user_class_level": 1 + (_mix(user, 12) % 4).astype(np.int64),
        "price": price,
    }
    columns["buy"] = columns["clk"] * (rng.random(n) < 0.02)
    return columns


def taobao_rows(chunk: dict[str, np.ndarray]) -> Iterator[list[str]]:
    n = len(chunk["clk"])
    for i in range(n):
        row = []
        for name in TAOBAO_COLUMNS:
            if name == "tag_category_list":
                row.append("|".join(str(v) for v in (chunk["cate_id"][i], chunk["cate_id"][i] + 3)))
            elif name == "tag_brand_list":
                row.append(str(chunk["brand"][i]))
            else:
                row.append(str(chunk[name][i]))
        yield row


FORMATS = {
    "criteo": ("kaggle", "csv", "csv-header"),
    "taobao": ("csv", "csv-header"),
}


def generate(
    dataset: str,
    path: Path,
    rows: int,
    seed: int,
    layout: str = "csv",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ROWS rows of DATASET to PATH in LAYOUT, deterministically from SEED. Returns rows written."""
    if layout not in FORMATS[dataset]:
        raise ValueError(f"layout {layout!r} does not exist for {dataset} (one of {', '.join(FORMATS[dataset])})")
    if rows <= 0:
        raise ValueError("rows must be positive")
    rng = np.random.default_rng(seed)
    separator = "\t" if layout == "kaggle" else ","
    header = CRITEO_COLUMNS if dataset == "criteo" else TAOBAO_COLUMNS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    written = 0
    with tmp.open("w") as out:
        if layout == "csv-header":
            out.write(",".join(header) + "\n")
        while written < rows:
            n = min(CHUNK_ROWS, rows - written)
            if dataset == "criteo":
                lines = criteo_rows(criteo_chunk(rng, n), kaggle_ints=layout == "kaggle")
            else:
                lines = taobao_rows(taobao_chunk(rng, n))
            out.write("".join(separator.join(row) + "\n" for row in lines))
            written += n
            if progress:
                progress(n)
    tmp.replace(path)  # a reader never sees a half-written file
    return written
