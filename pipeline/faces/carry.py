"""Carrying a face one frame on by its appearance, where refinement's O-Net no longer scores it a face.

A head turning past about 60 degrees, or a face half in shadow or behind a hand, can score far below
O-Net's in-track threshold while it is plainly the same face as one frame before. `carry_faces` takes, per
position, the face found in the adjacent frame (its frame, box and landmarks) and looks for the same
appearance near where the face is expected now: the luminance of the face box in the adjacent frame, cut
to `SIDE` x `SIDE` and standardised (zero mean, unit norm), against the same cut of boxes shifted and
rescaled around the expected box (`COARSE`, then `FINE` around the best one). The best box is the face
carried on where its normalised cross-correlation is at least `FaceConfig.carry_similarity`; its
landmarks are the adjacent frame's moved and scaled with the box.

This is a template tracker of one frame's step: what stops it is a change of appearance between two
frames (a face that leaves or is hidden shows something else in its box). The tracker
(`pipeline.faces.follow`) carries a face at most `FaceConfig.carry_frames` frames away from a face O-Net
accepted, and never onto another position's face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch
from torchvision.ops import roi_align

from pipeline.faces.config import FaceConfig
from pipeline.faces.refine import LUMA, window

SIDE = 24  # template side in pixels
REACH = 1.9  # side of the window searched, in face sides (the trials reach 0.8 face sides from its centre)
# (dx, dy) shifts in face sides and scales of the coarse search, then of the fine one around its best box
COARSE = (tuple(float(x) for x in np.linspace(-0.24, 0.24, 9)), (0.92, 1.0, 1.08))
FINE = (tuple(float(x) for x in np.linspace(-0.045, 0.045, 4)), (0.97, 1.0, 1.03))


class Carried(NamedTuple):
    """A face carried on by its appearance, in full-frame pixels (MTCNN's box convention)."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32
    similarity: float  # normalised cross-correlation with the adjacent frame's face


def _luma(frame: np.ndarray, box: np.ndarray, cfg: FaceConfig) -> tuple[torch.Tensor, np.ndarray, float]:
    """Luminance window (1, 1, h, w) around `box` in `frame` (H, W, 3), its origin and scale: `REACH` face
    sides, the face resampled to about 2 `SIDE` pixels (the templates need no more)."""
    cut, origin, scale = window(frame, box, replace(cfg, refine_margin=REACH, refine_face=2 * SIDE))
    return torch.tensordot(torch.tensor(LUMA), cut, dims=1)[None, None], origin, scale  # (3, h, w) -> ...


def _edges(box: np.ndarray, origin: np.ndarray, scale: float) -> torch.Tensor:
    """An MTCNN box (4,) in frame pixels -> pixel-edge coordinates (4,) in window pixels."""
    edges = box.astype(np.float64) - np.array([1, 1, 0, 0])
    return torch.tensor((edges - np.tile(origin, 2)) * scale, dtype=torch.float32)


def _cut(luma: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Standardised templates (n, SIDE * SIDE) of edge boxes (n, 4) in a luminance window (1, 1, h, w)."""
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)  # (n, 5)
    x = roi_align(luma, rois, (SIDE, SIDE), spatial_scale=1.0, sampling_ratio=2, aligned=True).flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-3)


def _trials(box: torch.Tensor, grid: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
    """Boxes (g, 4) around an edge box (4,): shifted by the grid's steps (face sides) and rescaled."""
    steps, scales = torch.tensor(grid[0]), torch.tensor(grid[1])
    side = torch.stack([box[2] - box[0], box[3] - box[1]])  # (2,)
    centre = (box[:2] + box[2:]) / 2
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    shift = torch.stack([dx.flatten(), dy.flatten()], dim=1)  # (k, 2) face sides
    centres = centre + shift * side  # (k, 2)
    half = scales[:, None, None] * side / 2  # (s, 1, 2)
    return torch.cat([centres - half, centres + half], dim=2).reshape(-1, 4)  # (s k, 4)


def carry_faces(
    frames: Sequence[np.ndarray],
    expected: np.ndarray,
    before: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    cfg: FaceConfig,
) -> list[Carried | None]:
    """The face of each adjacent frame carried on into frames[i] (H, W, 3) uint8, looked for around
    expected[i] (m, 4); before[i] = (adjacent frame (H, W, 3), its face box (4,), landmarks (5, 2)).
    None where no box around the expected one looks like that face (similarity below the setting)."""
    out: list[Carried | None] = []
    with torch.inference_mode():
        for frame, box, (prior_frame, prior_box, prior_marks) in zip(frames, expected, before, strict=True):
            prior_luma, prior_origin, prior_scale = _luma(prior_frame, prior_box, cfg)
            template = _cut(prior_luma, _edges(prior_box, prior_origin, prior_scale)[None])[0]  # (S*S,)
            # searched around the expected box, at the adjacent face's size
            centre = (box[:2] + box[2:]) / 2
            half = (prior_box[2:] - prior_box[:2]) / 2
            start = np.concatenate([centre - half, centre + half])
            luma, origin, scale = _luma(frame, start, cfg)
            best = _edges(start, origin, scale)
            similarity = -1.0
            for grid in (COARSE, FINE):
                trials = _trials(best, grid)  # (g, 4)
                scores = _cut(luma, trials) @ template  # (g,)
                k = int(scores.argmax())
                if float(scores[k]) > similarity:
                    best, similarity = trials[k], float(scores[k])
            if similarity < cfg.carry_similarity:
                out.append(None)
                continue
            edges = best.double().numpy() / scale + np.tile(origin, 2)  # frame pixel edges
            found = (edges + np.array([1, 1, 0, 0])).astype(np.float32)  # MTCNN box
            prior_edges = prior_box.astype(np.float64) - np.array([1, 1, 0, 0])
            k_xy = (edges[2:] - edges[:2]) / np.maximum(prior_edges[2:] - prior_edges[:2], 1e-6)  # (2,)
            marks = (prior_marks - prior_edges[:2]) * k_xy + edges[:2]
            out.append(Carried(found, marks.astype(np.float32), similarity))
    return out
