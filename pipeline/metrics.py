"""Official ABAW metrics, pure numpy: CCC (VA), binary F1 (AU, AH), macro F1 (EXPR, AH), Pearson r (EMI).

Every metric is computed over all valid frames (clips for EMI) of all videos pooled together, never averaged
per video; frames whose label is invalid are left out through `mask`. Source: the ABAW 6th-8th challenge
material (CCC with population moments, ddof = 0).

Degenerate cases, defined once here and relied on by the tests:

- CCC = 2 cov / (var x + var y + (mean x - mean y)^2). When the denominator is 0 (both series constant and
  equal) CCC is 1: predictions agree with the labels exactly. Otherwise the formula decides, so a constant
  prediction scores 0 (its covariance is 0) and one frame scores 1 when equal, else 0.
- Pearson r with zero variance on either side is 0 (scipy returns NaN there).
- F1 = 2 TP / (2 TP + FP + FN), and 0 where the denominator is 0 (a class found neither in the labels nor in
  the predictions): scikit-learn's zero_division=0. Macro F1 averages over every class of the task, absent
  ones included, i.e. `f1_score(y, p, labels=range(K), average="macro", zero_division=0)`; scikit-learn
  without `labels` would average only over the classes present.
- No valid frame at all is a `MetricError`, never a silent 0 or NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from model.tasks import TASKS, get_task

Average = Literal["macro", "binary"]


class MetricError(ValueError):
    """Inputs that cannot be scored: no valid frame, mismatched shapes, non-finite values."""


@dataclass(frozen=True)
class MetricResult:
    """The official figure of one task and the parts it is made of."""

    task: str  # task name (model.tasks.TASKS key)
    metric: str  # what `value` is, e.g. "mean CCC of valence and arousal"
    value: float  # the official figure
    parts: dict[str, float] = field(default_factory=dict)  # per dimension / AU / class, in task order
    count: int = 0  # number of valid frames (clips for EMI) that were scored

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "value": self.value, "parts": dict(self.parts),
                "count": self.count}  # fmt: skip


# --------------------------------------------------------------------------------------------- primitives


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Concordance correlation coefficient of two 1-D series, population moments (ddof = 0)."""
    x, y = _pair(x, y)
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cov = np.mean((x - mx) * (y - my))
    denominator = vx + vy + (mx - my) ** 2
    if denominator == 0.0:
        return 1.0  # both constant and equal: exact agreement
    return float(2.0 * cov / denominator)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two 1-D series; 0 when either has zero variance."""
    x, y = _pair(x, y)
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(np.dot(dx, dx)), float(np.dot(dy, dy))
    if sxx == 0.0 or syy == 0.0:
        return 0.0
    return float(np.clip(np.dot(dx, dy) / np.sqrt(sxx * syy), -1.0, 1.0))


def f1_binary(pred: np.ndarray, true: np.ndarray) -> float:
    """F1 of the positive class (1) of two 0/1 vectors; 0 when neither has a positive."""
    pred, true = np.asarray(pred).astype(bool).ravel(), np.asarray(true).astype(bool).ravel()
    tp = int(np.count_nonzero(pred & true))
    denominator = int(np.count_nonzero(pred)) + int(np.count_nonzero(true))  # = 2TP + FP + FN
    return 2.0 * tp / denominator if denominator else 0.0


def f1_per_class(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """(K,) one-vs-rest F1 of each class 0..K-1 of two integer class vectors; 0 for an absent class."""
    pred, true = np.asarray(pred).astype(np.int64).ravel(), np.asarray(true).astype(np.int64).ravel()
    for name, v in (("predicted", pred), ("label", true)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise MetricError(f"{name} classes must lie in 0..{num_classes - 1}, found {v.min()}..{v.max()}")
    tp = np.bincount(true[pred == true], minlength=num_classes)
    denominator = np.bincount(pred, minlength=num_classes) + np.bincount(true, minlength=num_classes)
    out = np.zeros(num_classes, dtype=np.float64)
    np.divide(2.0 * tp, denominator, out=out, where=denominator > 0)
    return out


# ------------------------------------------------------------------------------------------ task metrics


def va_metric(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> MetricResult:
    """Mean of the valence and arousal CCC; pred, labels (N, 2) in [-1, 1]."""
    names = TASKS["va"].label_columns  # valence, arousal
    pred, labels = _select(pred, labels, mask, width=len(names))
    parts = {name: ccc(pred[:, k], labels[:, k]) for k, name in enumerate(names)}
    return _result("va", parts, len(labels))


def au_metric(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> MetricResult:
    """Mean over the 12 AUs of binary F1; pred, labels (N, 12) 0/1."""
    names = TASKS["au"].label_columns
    pred, labels = _select(pred, labels, mask, width=len(names))
    parts = {name: f1_binary(pred[:, k], labels[:, k]) for k, name in enumerate(names)}
    return _result("au", parts, len(labels))


def expr_metric(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> MetricResult:
    """Macro F1 over the 8 expression classes; pred, labels (N,) or (N, 1) integer classes."""
    pred, labels = _select(pred, labels, mask, width=1)
    names = TASKS["expr"].header  # the 8 class names
    f1 = f1_per_class(pred[:, 0], labels[:, 0], len(names))
    return _result("expr", dict(zip(names, f1.tolist(), strict=True)), len(labels))


def ah_metric(
    pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None, average: Average = "macro"
) -> MetricResult:
    """F1 of ambivalence/hesitancy; `average` "macro" (mean over the 2 classes) or "binary" (class 1)."""
    pred, labels = _select(pred, labels, mask, width=1)
    f1 = f1_per_class(pred[:, 0], labels[:, 0], 2)
    parts = {"absent": float(f1[0]), "present": float(f1[1])}
    if average == "macro":
        value = float(f1.mean())
    elif average == "binary":
        value = float(f1[1])
    else:
        raise MetricError(f"unknown F1 averaging {average!r}; use 'macro' or 'binary'")
    return MetricResult("ah", f"F1 ({average})", value, parts, len(labels))


def emi_metric(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> MetricResult:
    """Mean over the 6 intensities of the Pearson r across clips; pred, labels (N, 6)."""
    names = TASKS["emi"].label_columns
    pred, labels = _select(pred, labels, mask, width=len(names))
    parts = {name: pearson(pred[:, k], labels[:, k]) for k, name in enumerate(names)}
    return _result("emi", parts, len(labels))


def compute_metric(
    task: str,
    pred: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray | None = None,
    average: Average = "macro",
) -> MetricResult:
    """The official metric of `task` on pooled predictions and labels (rows = frames, or clips for EMI).

    pred and labels hold what a submission holds: VA values (N, 2), AU 0/1 (N, 12), EXPR classes (N,),
    AH 0/1 (N,), EMI intensities (N, 6). `mask` (N,) bool keeps the valid rows; `average` is AH's F1 setting.
    """
    get_task(task)
    if task == "ah":
        return ah_metric(pred, labels, mask, average=average)
    return {"va": va_metric, "au": au_metric, "expr": expr_metric, "emi": emi_metric}[task](
        pred, labels, mask
    )


# ---------------------------------------------------------------------------------------------- thresholds


def tune_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray | None = None,
    default: float = 0.5,
    average: Average = "binary",
) -> np.ndarray:
    """(K,) per-class thresholds that maximise the F1 of `probs >= t` on validation data.

    probs, labels (N, K) (or (N,) for one class); rows where `mask` is False are ignored. `average` is the
    F1 in force: "binary" the positive class's F1 (each AU), "macro" the mean of the F1 of both classes (AH's
    default), for which deciding every frame negative is a candidate too. The search is exact over every
    distinct probability: the threshold returned lies halfway between the lowest probability predicted
    positive and the next lower one (the lowest itself when all are positive; just above the highest when
    none is). Ties keep the higher threshold. A class without a positive label gets `default`.
    """
    if average not in ("binary", "macro"):
        raise MetricError(f"unknown F1 averaging {average!r}; use 'macro' or 'binary'")
    probs2 = np.asarray(probs, dtype=np.float64)
    probs2 = probs2[:, None] if probs2.ndim == 1 else probs2
    probs2, labels2 = _select(probs2, labels, mask, width=probs2.shape[1])
    thresholds = np.full(probs2.shape[1], default, dtype=np.float64)
    for k in range(probs2.shape[1]):
        thresholds[k] = _best_threshold(probs2[:, k], labels2[:, k] > 0.5, default, average)
    return thresholds


def _best_threshold(p: np.ndarray, y: np.ndarray, default: float, average: Average) -> float:
    positives, n = int(y.sum()), len(y)
    if positives == 0:
        return default
    order = np.argsort(-p, kind="stable")
    p_sorted, tp = p[order], np.cumsum(y[order])
    # the last position of each run of equal probabilities: everything up to it is predicted positive
    ends = np.flatnonzero(np.r_[p_sorted[1:] != p_sorted[:-1], True])
    predicted, tp = ends + 1, tp[ends]
    f1 = 2.0 * tp / (predicted + positives)  # 2TP / (2TP + FP + FN) = 2TP / (predicted + actual)
    if average == "macro":  # the negative class: TN = n - predicted - FN, its F1 likewise
        tn, negatives = n - predicted - (positives - tp), n - positives
        denominator = (n - predicted) + negatives
        f1_neg = np.divide(2.0 * tn, denominator, out=np.zeros(len(tn)), where=denominator > 0)
        f1 = (f1 + f1_neg) / 2
        none = negatives / (n + negatives) if negatives else 0.0  # every frame negative: F1 pos 0, neg 2TN/..
        if none > f1.max():
            return float(np.nextafter(p_sorted[0], np.inf))
    best = int(np.argmax(f1))
    lowest = p_sorted[ends[best]]
    if best + 1 < len(ends):
        return float((lowest + p_sorted[ends[best + 1]]) / 2.0)
    return float(lowest)


# ------------------------------------------------------------------------------------------------ helpers


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise MetricError(f"series of different lengths: {x.size} and {y.size}")
    if x.size == 0:
        raise MetricError("no valid frames to score")
    return x, y


def _select(
    pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of pred and labels (N, width) where mask holds, as float64; checks shapes and finiteness."""
    pred, labels = np.asarray(pred, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    pred = pred.reshape(len(pred), -1) if pred.ndim != 2 else pred  # (N,) -> (N, 1)
    labels = labels.reshape(len(labels), -1) if labels.ndim != 2 else labels
    for name, a in (("predictions", pred), ("labels", labels)):
        if a.shape[1] != width:
            raise MetricError(f"{name} have {a.shape[1]} columns, expected {width}")
    if len(pred) != len(labels):
        raise MetricError(f"{len(pred)} predictions for {len(labels)} labels")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool).ravel()
        if len(mask) != len(labels):
            raise MetricError(f"mask has {len(mask)} rows for {len(labels)} labels")
        pred, labels = pred[mask], labels[mask]
    if len(labels) == 0:
        raise MetricError("no valid frames to score")
    for name, a in (("predictions", pred), ("labels", labels)):
        if not np.isfinite(a).all():
            raise MetricError(f"{name} hold NaN or infinite values on valid frames")
    return pred, labels


def _result(task: str, parts: dict[str, float], count: int) -> MetricResult:
    return MetricResult(task, get_task(task).metric, float(np.mean(list(parts.values()))), parts, count)
