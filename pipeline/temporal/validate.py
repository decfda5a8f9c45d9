"""Validation of the temporal model: the official metric over the validation subjects' frames.

Every frame of every validation subject is predicted by a `Predictor` (as `lwaffect predict` does), frames
without a face are filled the way the submission fills them, and the official metric (`pipeline.metrics`)
is computed over all valid frames of all subjects pooled (one row per clip for EMI), with AU / AH
thresholds tuned on those frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.tasks import get_task
from pipeline.fill import fill_values
from pipeline.metrics import MetricResult, compute_metric, tune_thresholds
from pipeline.temporal.predictor import Predictor
from pipeline.temporal.windows import label_rows


@dataclass(frozen=True)
class Validation:
    """The official metric of one validation pass."""

    result: MetricResult  # the metric (with tuned thresholds for AU and AH)
    thresholds: tuple[float, ...] | None  # AU / AH per-class thresholds tuned on these frames
    frames: int  # valid frames (clips for EMI) scored


def score(
    task: str,
    preds: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    tune: bool = True,
    average: str = "macro",
) -> Validation:
    """Official metric of pooled predictions (activated, (N, out)) against labels (N, K) on `mask`."""
    kind = get_task(task).kind
    thresholds = None
    if kind in ("multilabel", "binary"):
        th = tune_thresholds(preds, labels, mask) if tune else np.full(preds.shape[1], 0.5)
        thresholds = tuple(float(t) for t in th)
        decided = (preds >= th).astype(np.int8)
        decided = decided[:, 0] if kind == "binary" else decided
        result = compute_metric(task, decided, labels, mask, average=average)  # type: ignore[arg-type]
    elif kind == "multiclass":
        result = compute_metric(task, preds.argmax(axis=1), labels[:, 0], mask)
    else:
        result = compute_metric(task, preds, labels, mask)
    return Validation(result, thresholds, int(np.count_nonzero(mask)))


def pooled_frames(
    predictor: Predictor,
    cache: Any,
    labels: Mapping[str, Any],
    subjects: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filled predictions (N, out), labels (N, K) and label validity (N,) of the subjects' rows pooled.

    Frame tasks give every cached row (faceless rows filled, labels looked up by decode index); a clip
    task gives one row per subject.
    """
    clip = predictor.spec.unit == "clip"
    reader = predictor.reader(cache)
    all_preds, all_labels, all_masks = [], [], []
    for subject in subjects if subjects is not None else list(labels):
        preds, index, face = predictor.predict(reader, subject)
        values = np.asarray(labels[subject].values, np.float32)
        valid = np.asarray(labels[subject].valid, bool)
        if clip:
            all_preds.append(preds[:1])
            all_labels.append(values[:1])
            all_masks.append(valid[:1])
            continue
        preds, _ = fill_values(preds, face)  # frames without a face: interpolated, as in the submission
        target, ok = label_rows(values, valid, index)
        all_preds.append(preds)
        all_labels.append(target)
        all_masks.append(ok)
    return np.concatenate(all_preds), np.concatenate(all_labels), np.concatenate(all_masks)


def validate(
    predictor: Predictor,
    cache: Any,
    labels: Mapping[str, Any],
    subjects: Sequence[str] | None = None,
) -> Validation:
    """Predict every frame of the validation subjects, fill frames without a face, score pooled frames."""
    return score(predictor.task, *pooled_frames(predictor, cache, labels, subjects))
