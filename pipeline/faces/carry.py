"""Carrying a face one frame on by its appearance, where refinement's O-Net no longer scores it a face.

A head turning past about 60 degrees, or a face half in shadow or behind a hand, can score far below
O-Net's in-track threshold while it is plainly the same face as one frame before. `carry_faces` takes, per
position, the face found in the adjacent frame (its frame, box and landmarks) and looks for the same
appearance near where the face is expected now: the luminance of the face box in the adjacent frame, cut
to `SIDE` x `SIDE` and standardised (zero mean, unit norm), against the same cut of boxes shifted and
rescaled around the expected box (`COARSE`, then `FINE` around the best one). The best box is the face
carried on where its normalised cross-correlation is at least `FaceConfig.carry_similarity`; its
landmarks are the adjacent frame's moved and scaled with the box.

Where a box reaches past the frame's edge (a face cut by it), only the pixels inside the frame in both
the template and the trial box are compared (`_similarity`), and at least `SHOWN` of the template's
pixels must be among them: the black the window is padded with outside the frame would otherwise match
itself wherever a trial box lies the same way across the edge, whatever the face does.

This is a template tracker of one frame's step: what stops it is a change of appearance between two
frames (a face that leaves or is hidden shows something else in its box). The tracker
(`pipeline.faces.follow`) carries a face at most `FaceConfig.carry_frames` frames away from a face O-Net
accepted, while its box's side stays within `SIZE_DRIFT` of that face's (a face leaving the frame
slowly would otherwise be followed onto what still shows of it, then onto the edge), while its box does
not move out across the frame's edge faster than `LEAVING` a frame (a face leaving quickly: the part of the
template still inside matches what is left of the face, one frame after the face is mostly gone), and never
onto another position's face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch

from pipeline.colour import LUMA
from pipeline.faces.config import FaceConfig
from pipeline.faces.refine import window

SIDE = 24  # template side in pixels
REACH = 1.9  # side of the window searched, in face sides (the trials reach 0.8 face sides from its centre)
# (dx, dy) shifts in face sides and scales of the coarse search, then of the fine one around its best box
COARSE = (tuple(float(x) for x in np.linspace(-0.24, 0.24, 9)), (0.92, 1.0, 1.08))
FINE = (tuple(float(x) for x in np.linspace(-0.045, 0.045, 4)), (0.97, 1.0, 1.03))
SIZE_DRIFT = 1.25  # a face is carried while its box's side is within this factor of the face last accepted
# a face is not carried onto a box this much more of whose area lies past the frame's edge than of the face
# it continues, one frame before (a few hundredths a frame where a face leans out slowly)
LEAVING = 0.15
SHOWN = 0.5  # least share of a template's pixels inside the frame, and inside it in a trial box, compared


class Carried(NamedTuple):
    """A face carried on by its appearance, in full-frame pixels (MTCNN's box convention)."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32
    similarity: float  # normalised cross-correlation with the adjacent frame's face


Grid = tuple[tuple[float, ...], tuple[float, ...]]  # shifts (face sides) and scales of trial boxes


def _luma(frame: np.ndarray, box: np.ndarray, cfg: FaceConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """Luminance window (h, w) float32 around `box` in `frame` (H, W, 3), its origin and scale: `REACH`
    face sides, the face resampled to about 2 `SIDE` pixels (the templates need no more)."""
    cut, origin, scale = window(frame, box, replace(cfg, refine_margin=REACH, refine_face=2 * SIDE))
    return np.tensordot(LUMA, cut.numpy(), axes=1), origin, scale  # (3, h, w) -> ...


def _edges(box: np.ndarray, origin: np.ndarray, scale: float) -> np.ndarray:
    """An MTCNN box (4,) in frame pixels -> pixel-edge coordinates (4,) float32 in window pixels."""
    edges = box.astype(np.float64) - np.array([1, 1, 0, 0])
    return ((edges - np.tile(origin, 2)) * scale).astype(np.float32)


def _weights(start: np.ndarray, end: np.ndarray, size: int) -> np.ndarray:
    """Along one axis of a window `size` pixels long, the weights (n, SIDE, size) that average a range's
    (pixel edges [start, end), (n,) float32) SIDE bins the way roi_align does (aligned, two bilinear
    samples per bin; a sample more than a pixel outside the window counts zero, one less is clamped)."""
    first = start - np.float32(0.5)  # (n,)
    step = (end - start) / np.float32(SIDE)  # (n,) bin size
    bins = np.arange(SIDE, dtype=np.float32)[:, None]  # (SIDE, 1)
    offsets = (np.arange(2, dtype=np.float32) + np.float32(0.5))[None, :]  # (1, 2)
    pos = first[:, None, None] + bins * step[:, None, None] + offsets * step[:, None, None] / np.float32(2)
    inside = (pos >= -1) & (pos <= size)  # (n, SIDE, 2)
    pos = np.maximum(pos, 0)
    low = np.minimum(pos.astype(np.int64), size - 1)
    pos = np.where(low >= size - 1, low.astype(np.float32), pos)
    frac = (pos - low) * inside / np.float32(2)  # weight of the pixel after `low`, halved (two samples)
    out = np.zeros((len(start), SIDE, size), np.float32)
    n, b = np.indices(low.shape[:2])  # (n, SIDE)
    for k in range(2):
        np.add.at(out, (n, b, low[..., k]), inside[..., k] / np.float32(2) - frac[..., k])
        np.add.at(out, (n, b, np.minimum(low[..., k] + 1, size - 1)), frac[..., k])
    return out


def _grid(luma: np.ndarray, box: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Trial boxes around an edge box (4,) in a luminance window (h, w): shifted by the grid's steps (face
    sides) in both directions and rescaled by its scales, (g, 4) in the order scale, dy, dx; and their
    templates (g, SIDE * SIDE) (luminance).

    Each template is what roi_align cuts (aligned, two samples per bin): its bilinear sampling is one
    weight matrix per axis (`_weights`), so the templates of a grid are two matrix products rather than
    bilinear samples of every box (which took about half of a carried frame's time).
    """
    steps, scales = np.array(grid[0], np.float32), np.array(grid[1], np.float32)
    side = np.stack([box[2] - box[0], box[3] - box[1]])  # (2,)
    centre = (box[:2] + box[2:]) / 2
    centres = centre[None, :] + steps[:, None] * side  # (k, 2) per axis: x and y of each step
    half = scales[:, None] * side / 2  # (s, 2)
    lo, hi = centres[None] - half[:, None], centres[None] + half[:, None]  # (s, k, 2)
    height, width = luma.shape
    s, k = lo.shape[:2]
    ay = _weights(lo[..., 1].ravel(), hi[..., 1].ravel(), height).reshape(s, k * SIDE, height)
    ax = _weights(lo[..., 0].ravel(), hi[..., 0].ravel(), width).reshape(s, k * SIDE, width)
    cut = (ay @ luma) @ ax.transpose(0, 2, 1)  # (s, k dy SIDE, k dx SIDE)
    cut = cut.reshape(s, k, SIDE, k, SIDE).transpose(0, 1, 3, 2, 4).reshape(s * k * k, SIDE * SIDE)
    x0 = np.broadcast_to(lo[:, None, :, 0], (s, k, k))  # (s, dy, dx)
    y0 = np.broadcast_to(lo[:, :, None, 1], (s, k, k))
    x1 = np.broadcast_to(hi[:, None, :, 0], (s, k, k))
    y1 = np.broadcast_to(hi[:, :, None, 1], (s, k, k))
    return np.stack([x0, y0, x1, y1], axis=-1).reshape(-1, 4), cut


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
            prior_edges = _edges(prior_box, prior_origin, prior_scale)[None]  # (1, 4)
            template = _grid(prior_luma, prior_edges[0], ((0.0,), (1.0,)))[1][0]  # (S*S,)
            shown = _inside(prior_edges, _frame_edges(prior_frame, prior_origin, prior_scale))[0]  # (S*S,)
            # searched around the expected box, at the adjacent face's size
            centre = (box[:2] + box[2:]) / 2
            half = (prior_box[2:] - prior_box[:2]) / 2
            start = np.concatenate([centre - half, centre + half])
            luma, origin, scale = _luma(frame, start, cfg)
            inside = _frame_edges(frame, origin, scale)
            best = _edges(start, origin, scale)
            similarity = -1.0
            for grid in (COARSE, FINE):
                trials, cuts = _grid(luma, best, grid)  # (g, 4), (g, S*S)
                scores = _similarity(cuts, _inside(trials, inside), template, shown)  # (g,)
                k = int(scores.argmax())
                if float(scores[k]) > similarity:
                    best, similarity = trials[k], float(scores[k])
            if similarity < cfg.carry_similarity:
                out.append(None)
                continue
            edges = best.astype(np.float64) / scale + np.tile(origin, 2)  # frame pixel edges
            found = (edges + np.array([1, 1, 0, 0])).astype(np.float32)  # MTCNN box
            prior_edges = prior_box.astype(np.float64) - np.array([1, 1, 0, 0])
            k_xy = (edges[2:] - edges[:2]) / np.maximum(prior_edges[2:] - prior_edges[:2], 1e-6)  # (2,)
            marks = (prior_marks - prior_edges[:2]) * k_xy + edges[:2]
            out.append(Carried(found, marks.astype(np.float32), similarity))
    return out


def past_edge(box: np.ndarray, size: tuple[int, int]) -> float:
    """The share of a box's area (4,) that lies outside a frame of `size` (H, W)."""
    height, width = size
    w = max(0.0, float(min(box[2], width) - max(box[0], 0.0)))
    h = max(0.0, float(min(box[3], height) - max(box[1], 0.0)))
    return 1.0 - w * h / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)


def _frame_edges(frame: np.ndarray, origin: np.ndarray, scale: float) -> np.ndarray:
    """The frame (H, W, 3) as pixel edges (4,) x0, y0, x1, y1 in the pixels of a window at `origin`, `scale`."""
    height, width = frame.shape[:2]
    return ((np.array([0.0, 0.0, width, height]) - np.tile(origin, 2)) * scale).astype(np.float32)


def _inside(boxes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The share of each of the SIDE x SIDE bins of edge boxes (g, 4) that lies inside the frame's edges
    (4,), all in window pixels: (g, SIDE * SIDE) in [0, 1]."""
    bins = np.arange(SIDE + 1, dtype=np.float32) / SIDE  # (SIDE + 1,) bin edges, box fractions

    def along(lo: np.ndarray, hi: np.ndarray, start: float, stop: float) -> np.ndarray:
        edges = lo[:, None] + (hi - lo)[:, None] * bins  # (g, SIDE + 1)
        width = np.maximum(edges[:, 1:] - edges[:, :-1], 1e-6)
        return np.clip(np.minimum(edges[:, 1:], stop) - np.maximum(edges[:, :-1], start), 0, None) / width

    fy = along(boxes[:, 1], boxes[:, 3], frame[1], frame[3])  # (g, SIDE)
    fx = along(boxes[:, 0], boxes[:, 2], frame[0], frame[2])
    return np.minimum((fy[:, :, None] * fx[:, None, :]).reshape(len(boxes), -1), 1.0)


def _similarity(cuts: np.ndarray, inside: np.ndarray, template: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation (g,) of each cut (g, P) with the template (P,), over the pixels inside
    the frame in both (weighted by `inside` (g, P) and `shown` (P,), the shares inside); -1 where fewer
    than `SHOWN` of the template's pixels are compared. Boxes wholly inside the frame: plain NCC."""
    if inside.min() >= 1.0 and shown.min() >= 1.0:
        cuts = cuts - cuts.mean(axis=1, keepdims=True)
        cuts /= np.maximum(np.linalg.norm(cuts, axis=1, keepdims=True), 1e-3)
        t = template - template.mean()
        return cuts @ (t / max(float(np.linalg.norm(t)), 1e-3))
    w = inside * shown  # (g, P)
    n = w.sum(axis=1)  # (g,)
    safe = np.maximum(n, 1e-6)
    wc = w * cuts
    mc, mt = wc.sum(axis=1) / safe, (w @ template) / safe  # weighted means (g,)
    cov = wc @ template - n * mc * mt
    var_c = (wc * cuts).sum(axis=1) - n * mc**2
    var_t = w @ (template * template) - n * mt**2
    ncc = cov / np.sqrt(np.maximum(var_c, 1e-6 * safe) * np.maximum(var_t, 1e-6 * safe))
    return np.where(n >= SHOWN * len(template), ncc, -1.0)
