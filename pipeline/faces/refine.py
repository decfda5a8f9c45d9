"""Face refinement: MTCNN's own R-Net and O-Net on a crop of the full-resolution frame around a known box.

`refine_faces` takes, per candidate, a full frame and the box where a face is expected (the face's last
box moved on at its speed) and returns the face found there, or None. It is the second and third stage
of MTCNN (`facenet_pytorch.models.utils.detect_face`) without the first: the expected box stands in for
P-Net's candidates.

1. Window: a square of `refine_margin` face sides around the expected box, cut from the full-resolution
   frame, resampled (antialiased) where the face is larger than 1.25 `refine_face` pixels to about that
   size, never enlarged (roi_align samples a small face finely): the resolution
   follows the face, not the frame, so a small face in a 1080p frame is seen at its own resolution and a
   large one costs no more than a small one.
2. Contrast: the window's luminance percentiles `stretch` inside the expected box are stretched towards
   [`STRETCH_TO`] (at most `max_gain` times, never less contrast), one gain and offset for the three
   channels (hues kept); a dark or low-contrast face then looks to the nets like a well-lit one.
3. R-Net (24 x 24) on the expected box made square; where it passes the track's R-Net threshold, its box
   regression is applied (`bbreg`) and the box made square again (`rerec`), as MTCNN does; where it does
   not, the expected box is kept.
4. O-Net (48 x 48) on that box: its score must pass the track's O-Net threshold (this gate is what keeps
   boxes off frames without a face), its box regression gives the face box, its landmarks the five
   points. (O-Net alone, without R-Net's step, costs a quarter less but drifts when each frame's box
   is the next one's expectation: median IoU 0.874 instead of 0.90 over chains of 40 frames, at 96 px.)
5. Where O-Net finds no face: R-Net on the expected box and a grid of shifted and rescaled boxes around
   it (`GRID`); the best one, if it passes R-Net's threshold, regressed and made square, goes to O-Net
   as in 4.

Patches are cut with `torchvision.ops.roi_align` (float boxes, averaging over each output cell like
MTCNN's area resampling). Boxes follow MTCNN's convention: (x1, y1, x2, y2) covers pixel edges x1 - 1 to
x2 (its 1-based indexing), landmarks are in 0-based pixel-edge coordinates; refined boxes and the boxes
`detect_faces` returns are thus alike and comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch import MTCNN
from torchvision.ops import roi_align

from pipeline.colour import LUMA
from pipeline.faces.config import FaceConfig

# R-Net search grid where the expected box fails: (dx, dy, scale), shifts in face sides (two rings)
GRID: tuple[tuple[float, float, float], ...] = tuple(
    (r * dx, r * dy, 1.0) for r in (0.3, 0.6) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy
) + ((0.0, 0.0, 0.8), (0.0, 0.0, 1.25))
STRETCH_TO = (25.0, 230.0)  # target luminance of the `stretch` percentiles


class Found(NamedTuple):
    """A face found by refinement, in full-frame pixels (MTCNN's box convention)."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32 eyes, nose, mouth corners
    score: float  # O-Net score


def square(box: np.ndarray) -> np.ndarray:
    """Boxes (n, 4) in pixel-edge coordinates made square about their centres (side: the longer one)."""
    side = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    centre = (box[:, :2] + box[:, 2:]) / 2
    return np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], axis=1)


def regress(box: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """MTCNN's box regression (`bbreg`) of edge-coordinate boxes (n, 4) by offsets (n, 4) in box sides."""
    size = np.tile(np.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], axis=1), (1, 2))  # (n, 4)
    return box + reg * size


def contrast_map(luma: np.ndarray, cfg: FaceConfig) -> tuple[float, float]:
    """Gain and offset (y = gain * x + offset) that move the luminance percentiles `cfg.stretch` of the
    values `luma` (k,) towards STRETCH_TO: never less contrast, at most `cfg.max_gain`. (numpy: at a
    thousand values, half of torch's time per call; the same linear interpolation.)"""
    lo, hi = (float(v) for v in np.percentile(luma, cfg.stretch))
    gain = min(max((STRETCH_TO[1] - STRETCH_TO[0]) / max(hi - lo, 1e-3), 1.0), cfg.max_gain)
    return gain, (STRETCH_TO[0] + STRETCH_TO[1]) / 2 - gain * (lo + hi) / 2


def face_contrast(window: torch.Tensor, inner: np.ndarray, cfg: FaceConfig) -> tuple[float, float]:
    """Gain and offset (`contrast_map`) that normalise the contrast of a window (3, h, w) float in
    [0, 255] in its region `inner` (4,) (x0, y0, x1, y1 window pixels: the expected face)."""
    x0, y0, x1, y1 = (int(v) for v in inner.round())
    x = window.numpy()  # (3, h, w)
    region = x[:, max(y0, 0) : max(y1, y0 + 1) : 4, max(x0, 0) : max(x1, x0 + 1) : 4]  # every 16th pixel
    if region.size == 0:
        return 1.0, 0.0
    return contrast_map(np.tensordot(LUMA, region, axes=1).ravel(), cfg)


def lift_contrast(frame: torch.Tensor, cfg: FaceConfig) -> torch.Tensor | None:
    """A detection frame (h, w, 3) uint8 with its contrast normalised as a whole (`contrast_map` over
    every 4th pixel), or None where that gain is below `cfg.lift_gain` (a frame of ordinary contrast:
    stretching it would only clip its brightest and darkest faces)."""
    x = frame.float()  # (h, w, 3)
    gain, offset = contrast_map(x.reshape(-1, 3)[::4].numpy() @ LUMA, cfg)
    if gain < cfg.lift_gain:
        return None
    return (x * gain + offset).round_().clamp_(0, 255).to(torch.uint8)


def window(frame: np.ndarray, box: np.ndarray, cfg: FaceConfig) -> tuple[torch.Tensor, np.ndarray, float]:
    """The refinement window of one expected box (MTCNN convention) in a frame (H, W, 3) uint8.

    Returns the window (3, h, w) float32 in [0, 255] (zeros outside the frame), its origin (x, y) in
    frame pixel edges and its scale (window pixels per frame pixel).
    """
    height, width = frame.shape[:2]
    edges = box.astype(np.float64) - np.array([1, 1, 0, 0])  # MTCNN box -> pixel-edge coordinates
    side = max(edges[2] - edges[0], edges[3] - edges[1], 1.0)
    centre = (edges[:2] + edges[2:]) / 2
    half = cfg.refine_margin * side / 2
    x0, y0 = int(np.floor(centre[0] - half)), int(np.floor(centre[1] - half))
    n = int(np.ceil(2 * half))  # window side in frame pixels
    # resampled to the face's size where the face is much larger; never enlarged (roi_align samples
    # small faces finely)
    scale = cfg.refine_face / side if side > 1.25 * cfg.refine_face else 1.0
    out = max(round(n * scale), 1)
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + n, width), min(y0 + n, height)
    if (fx0, fy0, fx1, fy1) == (x0, y0, x0 + n, y0 + n):
        crop = frame[y0 : y0 + n, x0 : x0 + n]  # inside the frame: a view ...
        if out != n:  # ... copied where it is resampled: on a contiguous crop that costs 0.6x the time
            crop = np.ascontiguousarray(crop)
    else:
        crop = np.zeros((n, n, 3), np.uint8)
        if fx1 > fx0 and fy1 > fy0:
            crop[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    if out != n:
        x = torch.from_numpy(crop).permute(2, 0, 1)[None]  # (n, n, 3) -> (1, 3, n, n), channels-last strides
        x = F.interpolate(x, size=(out, out), mode="bilinear", antialias=True, align_corners=False)
        chw = x[0].to(torch.float32, memory_format=torch.contiguous_format)  # (3, out, out)
    else:
        # contiguous (3, n, n) once here (roi_align would otherwise copy a channels-last window at every
        # call); numpy's transposing cast takes a third of torch's time
        chw = torch.from_numpy(crop.transpose(2, 0, 1).astype(np.float32))
    return chw, np.array([x0, y0], np.float64), out / n


def _stack(windows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Windows (3, h, w) as one batch (m, 3, side, side), zero-padded at the bottom and right to the
    largest; one window is not copied."""
    if len(windows) == 1:
        return windows[0][None]
    side = max(int(w.shape[-1]) for w in windows)
    return torch.stack([F.pad(w, (0, side - w.shape[-1], 0, side - w.shape[-2])) for w in windows])


def _patches(
    windows: torch.Tensor, which: np.ndarray, boxes: np.ndarray, size: int, contrast: np.ndarray
) -> torch.Tensor:
    """MTCNN's input patches (n, 3, size, size) of edge boxes (n, 4) float32 in window pixels of
    windows[which], with each window's contrast map (m, 2) gain, offset applied (roi_align is linear: the
    same as mapping the window first), normalised as MTCNN does."""
    rois = np.concatenate([which[:, None].astype(np.float32), boxes], axis=1)  # (n, 5): window, x0, y0, ...
    patches = roi_align(
        windows, torch.from_numpy(rois), (size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True
    )
    # the contrast map and MTCNN's normalisation ((y - 127.5) / 128 of y clamped to [0, 255]) in one:
    # z = clamp(gain / 128 x + (offset - 127.5) / 128, -127.5 / 128, 127.5 / 128)
    mapped = torch.from_numpy((contrast[which] - [0.0, 127.5]) / 128).float()  # (n, 2)
    gain, offset = mapped[:, 0, None, None, None], mapped[:, 1, None, None, None]  # (n, 1, 1, 1)
    patches = patches.mul_(gain).add_(offset).clamp_(-127.5 / 128, 127.5 / 128)  # in place
    # channels-last: the same outputs, and the nets' max-pooling runs about 10x faster on the CPU
    return patches.contiguous(memory_format=torch.channels_last)


def _onet(
    detector: MTCNN, windows: torch.Tensor, which: np.ndarray, boxes: np.ndarray, contrast: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """O-Net on square edge boxes (k, 4) of windows[which]: scores (k,), face boxes (k, 4) after its box
    regression and landmarks (k, 5, 2), in window pixels."""
    reg, marks, prob = _numpy(
        detector.onet(_patches(windows, which, boxes, 48, contrast).to(detector.device))
    )
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)  # (k, 2)
    points = boxes[:, None, :2] + np.stack([marks[:, :5], marks[:, 5:]], axis=2) * size[:, None]  # (k, 5, 2)
    return prob[:, 1], regress(boxes, reg), points


def _numpy(outputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """A net's outputs as numpy arrays (the geometry around the nets is a few small arrays: numpy's
    per-call cost is a fraction of torch's)."""
    return [t.cpu().numpy() for t in outputs]


def _search(
    detector: MTCNN,
    windows: torch.Tensor,
    which: np.ndarray,
    expected: np.ndarray,
    contrast: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """R-Net on the expected boxes (k, 4) and the `GRID` around each: the best one's score (k,) and its
    box after R-Net's regression, made square (k, 4), in window pixels."""
    grid = np.array(((0.0, 0.0, 1.0), *GRID), np.float32)  # (g, 3): the expected box itself first
    side = (expected[:, 2] - expected[:, 0])[:, None]  # (k, 1)
    centre = (expected[:, :2] + expected[:, 2:]) / 2  # (k, 2)
    cx = centre[:, :1] + grid[None, :, 0] * side  # (k, g)
    cy = centre[:, 1:] + grid[None, :, 1] * side
    half = side * grid[None, :, 2] / 2
    trial = np.stack([cx - half, cy - half, cx + half, cy + half], axis=2).reshape(-1, 4)  # (k g, 4)
    patches = _patches(windows, np.repeat(which, len(grid)), trial, 24, contrast)
    reg, prob = _numpy(detector.rnet(patches.to(detector.device)))
    score = prob[:, 1].reshape(len(which), len(grid))
    best = score.argmax(axis=1)  # (k,)
    pick = np.arange(len(which)) * len(grid) + best
    return score[np.arange(len(which)), best], square(regress(trial[pick], reg[pick]))


def refine_faces(
    frames: Sequence[np.ndarray], boxes: np.ndarray, detector: MTCNN, cfg: FaceConfig, search: bool = True
) -> list[Found | None]:
    """The face near each expected box: frames[i] (H, W, 3) uint8 RGB, boxes (m, 4) expected boxes in its
    pixels (MTCNN's convention); a Found or None (no face passing the track's thresholds) per box.
    `search`: where O-Net finds no face at the expected box, R-Net searches the grid around it (step 5)."""
    m = len(boxes)
    if m == 0:
        return []
    r_thr, o_thr = cfg.refine_thresholds
    cut = [window(frames[i], np.asarray(boxes[i]), cfg) for i in range(m)]
    windows = _stack([w for w, _, _ in cut])  # (m, 3, side, side)
    origin = np.stack([o for _, o, _ in cut])  # (m, 2) frame px of each window's corner
    scale = np.array([s for _, _, s in cut])  # (m,) window px per frame px
    edges = np.asarray(boxes, np.float64) - np.array([1.0, 1.0, 0.0, 0.0])  # (m, 4)
    expected = square((edges - np.tile(origin, 2)) * scale[:, None]).astype(np.float32)  # (m, 4) window px
    contrast = np.array([face_contrast(windows[i], expected[i], cfg) for i in range(m)], np.float32)  # (m, 2)
    every = np.arange(m)
    with torch.autocast(device_type="cpu", enabled=False), torch.inference_mode():
        # R-Net on the expected boxes, O-Net on the boxes it moves them to
        reg, prob = _numpy(
            detector.rnet(_patches(windows, every, expected, 24, contrast).to(detector.device))
        )
        r_score, cand = prob[:, 1], square(regress(expected, reg))
        passed = r_score >= r_thr
        cand[~passed] = expected[~passed]  # where R-Net sees no face, O-Net looks at the expected box
        score, final, points = _onet(detector, windows, every, cand, contrast)
        miss = np.flatnonzero(score < o_thr)
        if search and len(miss):  # neither found it: R-Net searches around the expected box
            r_score, cand = _search(detector, windows, miss, expected[miss], contrast)
            again = miss[r_score >= r_thr]
            if len(again):
                found = _onet(detector, windows, again, cand[r_score >= r_thr], contrast)
                score[again], final[again], points[again] = found
    out: list[Found | None] = [None] * m
    for i in np.flatnonzero(score >= o_thr).tolist():
        o, k = origin[i], scale[i]
        box = final[i].astype(np.float64) / k + np.tile(o, 2) + np.array([1, 1, 0, 0])  # -> MTCNN box
        marks = points[i].astype(np.float64) / k + o
        out[i] = Found(box.astype(np.float32), marks.astype(np.float32), float(score[i]))
    return out
