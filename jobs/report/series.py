"""Pure helpers that make long per-frame series small enough to draw: bins, runs of flagged frames.

A timeline keeps at most `most` points: frames are grouped in bins of `k = ceil(N / most)` consecutive
frames, and each bin shows the mean of its values (VA; for 0/1 decisions, the share of frames on) or its
most frequent class (EXPR). With N <= most every frame is its own bin and the values are drawn as they are.
"""

from __future__ import annotations

import math

import numpy as np


def bin_size(frames: int, most: int) -> int:
    """Frames per bin so that `frames` frames make at most `most` bins."""
    return max(1, math.ceil(frames / max(most, 1)))


def _starts(n: int, k: int) -> np.ndarray:
    return np.arange(0, n, k)


def bin_mean(values: np.ndarray, k: int) -> np.ndarray:
    """(N, K) or (N,) values -> the mean of each bin of `k` rows, NaN ignored (NaN where a bin has none)."""
    values = np.asarray(values, dtype=np.float64)
    if k == 1 or len(values) == 0:
        return values.copy()
    starts = _starts(len(values), k)
    present = ~np.isnan(values)
    sums = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)
    counts = np.add.reduceat(present.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def bin_mode(codes: np.ndarray, k: int, classes: int) -> np.ndarray:
    """(N,) class codes 0..classes-1 (NaN or negative: none) -> the most frequent class of each bin
    (the lowest code on a tie), NaN where a bin has no class."""
    codes = np.asarray(codes, dtype=np.float64)
    if len(codes) == 0:
        return codes.copy()
    valid = ~np.isnan(codes) & (codes >= 0) & (codes < classes)
    if k == 1:
        return np.where(valid, codes, np.nan)
    onehot = np.zeros((len(codes), classes), np.int64)  # (N, C)
    onehot[np.flatnonzero(valid), codes[valid].astype(np.int64)] = 1
    counts = np.add.reduceat(onehot, _starts(len(codes), k), axis=0)  # (M, C)
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1).astype(np.float64), np.nan)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True in a (N,) bool mask, 0-based."""
    mask = np.asarray(mask, dtype=bool)
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def merge_runs(spans: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """At most `most` spans: where there are more, spans closer than the smallest gap that brings the
    count down are joined (the frames between them are then inside a span)."""
    if len(spans) <= most:
        return list(spans)
    gaps = sorted(b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False))
    limit = gaps[len(spans) - most - 1]  # joining every gap <= limit leaves at most `most` spans
    merged = [spans[0]]
    for start, stop in spans[1:]:
        if start - merged[-1][1] <= limit:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged
