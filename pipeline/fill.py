"""Filling of frames without a face, so that every frame of a video gets a prediction.

Per subject: values of face frames are kept; a frame without a face gets the linear interpolation between
the nearest face frames before and after it (method "linear") or the value of the nearest face frame
(method "nearest", the earlier one on a tie); before the first and after the last face frame the nearest
face frame's value is held. Class outputs are filled as probabilities and their classes derived again.

A subject without any face frame gets a neutral default and every frame is flagged: VA (0, 0), every
probability 0 and so class 0 (EXPR Neutral, AU and AH absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from model.tasks import get_task

FillMethod = Literal["linear", "nearest"]


@dataclass(frozen=True)
class FillConfig:
    """How frames without a face are filled."""

    method: FillMethod = "linear"  # "linear": interpolate between face frames; "nearest": copy the nearest


def fill_values(
    values: np.ndarray, face: np.ndarray, method: FillMethod = "linear", default: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the rows of `values` (N, K) (or (N,)) where `face` (N,) is False.

    Returns the filled values (same shape, float32 unless float64 came in) and `filled` (N,) bool, True on
    every row that was filled.
    """
    values = np.asarray(values)
    face = np.asarray(face, dtype=bool).ravel()
    if len(face) != len(values):
        raise ValueError(f"face mask has {len(face)} rows for {len(values)} frames")
    if method not in ("linear", "nearest"):
        raise ValueError(f"unknown fill method {method!r}; use 'linear' or 'nearest'")
    dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.float32
    out = np.array(values, dtype=dtype, copy=True)
    view = out[:, None] if out.ndim == 1 else out  # (N,) -> (N, 1); writes go through to `out`
    filled = ~face
    if not filled.any():
        return out, filled
    known = np.flatnonzero(face)
    missing = np.flatnonzero(filled)
    if len(known) == 0:
        view[:] = default
        return out, filled
    if method == "linear":
        for k in range(view.shape[1]):  # np.interp holds the end values beyond the first and last face frame
            view[missing, k] = np.interp(missing, known, view[known, k].astype(np.float64))
    else:
        right = np.clip(np.searchsorted(known, missing), 0, len(known) - 1)
        left = np.clip(right - 1, 0, len(known) - 1)
        use_left = np.abs(missing - known[left]) <= np.abs(known[right] - missing)
        view[missing] = view[np.where(use_left, known[left], known[right])]
    return out, filled


def fill_probabilities(
    probs: np.ndarray,
    face: np.ndarray,
    kind: Literal["multiclass", "multilabel", "binary"],
    method: FillMethod = "linear",
    thresholds: np.ndarray | float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill probabilities (N, K) and derive classes again on the filled rows.

    kind "multiclass": class = argmax (N,); "multilabel"/"binary": class = probs >= thresholds (N, K).
    Returns (probs, classes, filled); classes of face rows are derived the same way.
    """
    filled_probs, filled = fill_values(probs, face, method=method, default=0.0)
    p2 = filled_probs[:, None] if filled_probs.ndim == 1 else filled_probs
    if kind == "multiclass":
        classes = np.argmax(p2, axis=1).astype(np.int8)  # (N, K) -> (N,); all zeros -> class 0
    else:
        classes = (p2 >= np.asarray(thresholds, dtype=np.float64)).astype(np.int8)
        classes = classes[:, 0] if filled_probs.ndim == 1 else classes
    return filled_probs, classes, filled


def fill_predictions(
    table: pl.DataFrame, task: str, cfg: FillConfig = FillConfig(), thresholds: np.ndarray | float = 0.5
) -> pl.DataFrame:
    """Fill every subject of a predictions table (contracts' Parquet schema) where `face` is False.

    Rows are sorted by subject and frame; value and probability columns of no-face rows are replaced, the
    class columns of filled rows derived again from the filled probabilities (AU / AH with `thresholds`,
    the ones the face rows were derived with), and `filled` is set. Clip tasks are returned unchanged.
    """
    spec = get_task(task)
    if spec.unit == "clip":
        return table
    table = table.sort(["subject", "frame"])
    parts = []
    for _, group in table.group_by("subject", maintain_order=True):
        parts.append(_fill_subject(group, task, cfg, thresholds))
    return pl.concat(parts) if parts else table


def _fill_subject(
    group: pl.DataFrame, task: str, cfg: FillConfig, thresholds: np.ndarray | float
) -> pl.DataFrame:
    spec = get_task(task)
    face = group["face"].to_numpy().astype(bool)
    if spec.kind == "regression":
        values, filled = fill_values(group.select(spec.label_columns).to_numpy(), face, cfg.method)
        updates = {c: values[:, k] for k, c in enumerate(spec.label_columns)}
    else:
        prob_cols, class_cols, kind = list(spec.probability_columns), list(spec.label_columns), spec.kind
        probs = group.select(prob_cols).to_numpy().astype(np.float32)
        probs, classes, filled = fill_probabilities(probs, face, kind, cfg.method, thresholds)
        old = group.select(class_cols).to_numpy()
        classes = classes.reshape(len(face), -1)
        classes = np.where(filled[:, None], classes, old.reshape(len(face), -1))  # keep classes of face rows
        updates = {c: probs[:, k] for k, c in enumerate(prob_cols)}
        updates |= {c: classes[:, k] for k, c in enumerate(class_cols)}
    columns = [pl.Series(name, v).cast(group.schema[name]) for name, v in updates.items()]
    old_filled = group["filled"].to_numpy().astype(bool) if "filled" in group.columns else False
    columns.append(pl.Series("filled", filled | old_filled, dtype=pl.Boolean))
    return group.with_columns(columns)
