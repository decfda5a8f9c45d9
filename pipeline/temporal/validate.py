"""Validation of the temporal model: the official metric over the validation subjects' frames.

Every frame of every validation subject is predicted by a `Predictor` (as `lwaffect predict` does), frames
without a face are filled the way the submission fills them, and the official metric (`pipeline.metrics`)
is computed over all valid frames of all subjects pooled (one row per clip for EMI).

AU and AH decide classes with thresholds tuned on validation, for the F1 in force (each AU's F1; AH's
macro F1 over both classes by default). Two figures come out:

- `result`, the honest one, which picks the best epoch and is reported: two folds of validation subjects
  (`two_folds`), the thresholds tuned on one fold decide the frames of the other and the other way round,
  and the metric is computed over all frames pooled: no frame is scored with thresholds fitted on it;
- `tuned`: the thresholds tuned on all validation frames (`thresholds`, kept in the checkpoint for
  prediction) scored on those same frames, an optimistic figure.

Tasks without thresholds (VA, EXPR, EMI) have one figure, `result`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.tasks import get_task
from pipeline.fill import fill_values
from pipeline.metrics import Average, MetricResult, compute_metric, tune_thresholds
from pipeline.temporal.predictor import Predictor
from pipeline.temporal.windows import label_rows


@dataclass(frozen=True)
class Validation:
    """The official metric of one validation pass."""

    result: MetricResult  # the figure that picks the epoch: two-fold for AU and AH, else the metric
    thresholds: tuple[float, ...] | None  # AU / AH per-class thresholds tuned on all these frames
    frames: int  # valid frames (clips for EMI) scored
    tuned: MetricResult | None = None  # AU / AH: `thresholds` scored on the frames they were tuned on


def two_folds(groups: np.ndarray) -> np.ndarray:
    """(N,) fold 0 / 1 of every row from its group (subject) id (N,): whole subjects, the largest first to
    the fold with fewer rows; a single subject is cut into its first and second half."""
    groups = np.asarray(groups)
    names, counts = np.unique(groups, return_counts=True)
    if len(names) < 2:
        return (np.arange(len(groups)) >= len(groups) // 2).astype(np.int64)
    fold_of, sizes = {}, [0, 0]
    for k in np.argsort(-counts, kind="stable"):
        fold = int(sizes[1] < sizes[0])
        fold_of[names[k]] = fold
        sizes[fold] += int(counts[k])
    return np.array([fold_of[g] for g in groups], np.int64)


def _decide(task: str, preds: np.ndarray, th: np.ndarray, labels: np.ndarray, mask: np.ndarray,
            average: Average) -> MetricResult:  # fmt: skip
    """The metric of probabilities (N, K) decided at thresholds (K,)."""
    decided = (preds >= th).astype(np.int8)
    decided = decided[:, 0] if get_task(task).kind == "binary" else decided
    return compute_metric(task, decided, labels, mask, average=average)


def score(
    task: str,
    preds: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    tune: bool = True,
    average: Average = "macro",
    groups: np.ndarray | None = None,
) -> Validation:
    """Official metric of pooled predictions (activated, (N, out)) against labels (N, K) on `mask`.

    For AU and AH with `tune`, `groups` (N,) names each row's subject for the two-fold figure (None: one
    subject); `average` is AH's F1 averaging, which its thresholds are tuned for.
    """
    kind = get_task(task).kind
    frames = int(np.count_nonzero(mask))
    if kind in ("multilabel", "binary"):
        f1 = average if kind == "binary" else "binary"  # what each class's threshold is tuned for
        if not tune:
            th = np.full(preds.shape[1], 0.5)
            return Validation(_decide(task, preds, th, labels, mask, average), tuple(th.tolist()), frames)
        th = tune_thresholds(preds, labels, mask, average=f1)
        tuned = _decide(task, preds, th, labels, mask, average)
        fold = two_folds(np.zeros(len(preds), np.int64) if groups is None else groups)
        crossed = np.empty_like(preds, dtype=np.float64)  # each fold's frames at the other fold's thresholds
        for k in (0, 1):
            other = mask & (fold != k)
            th_k = tune_thresholds(preds, labels, other, average=f1) if other.any() else th
            crossed[fold == k] = (preds[fold == k] >= th_k).astype(np.float64)
        honest = _decide(task, crossed, np.full(preds.shape[1], 0.5), labels, mask, average)
        return Validation(honest, tuple(float(t) for t in th), frames, tuned)
    if kind == "multiclass":
        return Validation(compute_metric(task, preds.argmax(axis=1), labels[:, 0], mask), None, frames)
    return Validation(compute_metric(task, preds, labels, mask), None, frames)


def pooled_frames(
    predictor: Predictor,
    cache: Any,
    labels: Mapping[str, Any],
    subjects: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Filled predictions (N, out), labels (N, K), label validity (N,) and subject number (N,) of the
    subjects' rows pooled.

    Frame tasks give every cached row (faceless rows filled, labels looked up by decode index); a clip
    task gives one row per subject.
    """
    clip = predictor.spec.unit == "clip"
    reader = predictor.reader(cache)
    all_preds, all_labels, all_masks, all_groups = [], [], [], []
    for number, subject in enumerate(subjects if subjects is not None else list(labels)):
        preds, index, face = predictor.predict(reader, subject)
        values = np.asarray(labels[subject].values, np.float32)
        valid = np.asarray(labels[subject].valid, bool)
        if clip:
            preds, target, ok = preds[:1], values[:1], valid[:1]
        else:
            preds, _ = fill_values(preds, face)  # frames without a face: interpolated, as in the submission
            target, ok = label_rows(values, valid, index)
        all_preds.append(preds)
        all_labels.append(target)
        all_masks.append(ok)
        all_groups.append(np.full(len(preds), number, np.int64))
    return (np.concatenate(all_preds), np.concatenate(all_labels), np.concatenate(all_masks),
            np.concatenate(all_groups))  # fmt: skip


def validate(
    predictor: Predictor,
    cache: Any,
    labels: Mapping[str, Any],
    subjects: Sequence[str] | None = None,
    average: Average = "macro",
) -> Validation:
    """Predict every frame of the validation subjects, fill frames without a face, score pooled frames."""
    preds, target, mask, groups = pooled_frames(predictor, cache, labels, subjects)
    return score(predictor.task, preds, target, mask, average=average, groups=groups)
