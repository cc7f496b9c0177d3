"""AUC and log loss against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelzoo.metrics import auc, log_loss

pytestmark = pytest.mark.unit


def test_auc_of_perfect_reversed_and_tied_scores() -> None:
    labels = np.array([0, 0, 1, 1])
    assert auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5


def test_auc_by_hand() -> None:
    # Pairs (pos, neg): (0.4 vs 0.1) win, (0.4 vs 0.35) win, (0.4 vs 0.8) lose,
    # (0.8 tie 0.8) half, (0.8 vs 0.1) win, (0.8 vs 0.35) win -> 4.5 / 6.
    labels = np.array([0, 0, 1, 0, 1])
    scores = np.array([0.1, 0.35, 0.4, 0.8, 0.8])
    assert auc(labels, scores) == pytest.approx(4.5 / 6)


def test_auc_of_one_class_is_undefined() -> None:
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_log_loss_by_hand() -> None:
    value = log_loss(np.array([1, 0]), np.array([0.8, 0.4]))
    assert value == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
