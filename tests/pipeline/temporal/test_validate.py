"""Validation: the official metric over pooled, filled frames, and threshold tuning for AU and AH."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model.tasks import TASKS
from pipeline.temporal.predictor import Predictor
from pipeline.temporal.validate import score, two_folds, validate
from tests.helpers import FakeCache, labels_for


def test_score_tunes_au_thresholds_and_uses_them():
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 12)) < 0.3).astype(np.float32)
    probs = 0.1 + 0.2 * labels + 0.01 * rng.random((200, 12))  # separable, but all below 0.5
    mask = np.ones(200, bool)
    tuned = score("au", probs, labels, mask)
    assert tuned.result.value == pytest.approx(1.0)
    assert all(0.1 < t < 0.31 for t in tuned.thresholds)
    assert score("au", probs, labels, mask, tune=False).result.value == pytest.approx(0.0)


def test_validate_pools_frames_fills_faceless_ones_and_skips_invalid_labels():
    face = np.ones(40, bool)
    face[10:14] = False
    cache = FakeCache({"a": 40, "b": 20}, faces={"a": face})

    class Echo(nn.Module):  # predicts valence = atanh(row / 100) so that tanh gives row / 100
        def forward(self, maps):
            rows = maps[0][:, :, 0, 0, 0] % 1000
            return torch.atanh((rows / 100).clamp(max=0.99)).unsqueeze(-1).repeat(1, 1, 2)

    valid = np.ones(40, bool)
    valid[30:] = False
    labels = {
        "a": labels_for(np.repeat((np.arange(40) / 100)[:, None], 2, axis=1), valid),
        "b": labels_for(np.repeat((np.arange(20) / 100)[:, None], 2, axis=1)),
    }
    labels["a"].values[30:] = 9.0  # invalid frames hold garbage that would ruin the CCC
    val = validate(Predictor(Echo(), "va", seq_len=8, stride=4), cache, labels)
    assert val.frames == 30 + 20
    assert val.result.value == pytest.approx(1.0, abs=1e-5)  # filled frames interpolate the line exactly


def test_score_of_ah_and_expr_decides_classes_like_the_submission():
    labels = np.array([[0], [0], [1], [1], [0], [1]], np.float32)
    probs = np.array([[0.1], [0.2], [0.3], [0.35], [0.15], [0.4]])  # separable below 0.5
    ah = score("ah", probs, labels, np.ones(6, bool))
    assert len(ah.thresholds) == 1 and ah.result.value == pytest.approx(1.0)  # macro F1 over both classes
    expr = score(
        "expr", np.eye(8)[[0, 3, 3, 7]], np.array([[0], [3], [2], [7]], np.float32), np.ones(4, bool)
    )
    assert expr.thresholds is None
    assert expr.result.parts["Fear"] == pytest.approx(2 / 3) and expr.result.parts["Disgust"] == 0.0


def chance(task: str, labels: np.ndarray) -> float:
    """The best expected figure of decisions that ignore the frames: each class decided present on a share q
    of frames at random, F1 = 2pq / (p + q) at prevalence p (and likewise for the absent class, which
    AH's macro F1 averages in), maximised over q."""
    q = np.linspace(0.001, 1.0, 1000)[:, None]
    p = labels.mean(axis=0)[None]
    present, absent = 2 * p * q / (p + q), 2 * (1 - p) * (1 - q) / ((1 - p) + (1 - q))
    return float((present if task == "au" else (present + absent) / 2).max(axis=0).mean())


@pytest.mark.parametrize("task,draws", [("au", 20), ("ah", 200)])
def test_on_random_scores_the_tuned_figure_is_above_chance_and_the_two_fold_one_at_chance(task, draws):
    rng = np.random.default_rng(1)
    n, k = 240, TASKS[task].outputs
    groups = np.repeat(np.arange(6), n // 6)  # six validation subjects
    gaps = []
    for _ in range(draws):  # averaged over draws: one AH class on 240 frames is a noisy figure
        labels = (rng.random((n, k)) < (0.15 if task == "au" else 0.3)).astype(np.float32)
        probs = rng.random((n, k))  # scores that know nothing about the labels
        val = score(task, probs, labels, np.ones(n, bool), groups=groups)
        assert val.tuned is not None and val.result.count == val.tuned.count == n
        gaps.append((val.tuned.value - chance(task, labels), val.result.value - chance(task, labels)))
    tuned, two_fold = np.mean(gaps, axis=0)
    assert tuned > 0.01  # thresholds fitted to noise score above chance on the frames they were fitted on
    assert two_fold < 0.005  # frames scored with the other fold's thresholds: chance or below


def test_two_folds_split_subjects_by_size_and_one_subject_in_halves():
    groups = np.array([0] * 50 + [1] * 30 + [2] * 25 + [3] * 5)
    fold = two_folds(groups)
    for g in range(4):  # whole subjects
        assert len(set(fold[groups == g].tolist())) == 1
    assert abs(int((fold == 0).sum()) - int((fold == 1).sum())) <= 10
    assert two_folds(np.zeros(7, int)).tolist() == [0, 0, 0, 1, 1, 1, 1]
