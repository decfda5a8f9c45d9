"""Face detection: facenet-pytorch MTCNN on batches of downscaled frames, numpy-2 safe.

`downscale` makes the detection frames (longest side `FaceConfig.work_size`) from the decoded ones.

`detect_faces` calls `MTCNN.detect(batch, landmarks=True)` (never `forward()`, whose box selection breaks on
a batch where some frames have no face, facenet-pytorch#224) and converts its object-dtype arrays to one
`FrameDetections` of float32 arrays per frame. MTCNN's last NMS runs in numpy and fails under bf16
autocast, so detection always runs with autocast off. `FaceConfig` holds the settings of the whole face
stage (`pipeline.faces.config`: detection here, tracking in `pipeline.faces.track`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch import MTCNN

from pipeline.faces.config import FaceConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameDetections:
    """The faces MTCNN found in one frame, best score first."""

    boxes: np.ndarray  # (k, 4) float32 x1, y1, x2, y2 in pixels of the frame given to `detect_faces`
    scores: np.ndarray  # (k,) float32 in [0, 1]
    landmarks: np.ndarray  # (k, 5, 2) float32: left eye, right eye, nose, left and right mouth corner

    @staticmethod
    def empty() -> FrameDetections:
        """No face."""
        return FrameDetections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        )

    def __len__(self) -> int:
        return len(self.scores)

    def scaled(self, sx: float, sy: float) -> FrameDetections:
        """Coordinates mapped to a frame `sx` times wider and `sy` times taller (pixel centres kept)."""
        box = (self.boxes + 0.5) * np.array([sx, sy, sx, sy], np.float32) - 0.5
        marks = (self.landmarks + 0.5) * np.array([sx, sy], np.float32) - 0.5
        return FrameDetections(box.astype(np.float32), self.scores, marks.astype(np.float32))


def small_shape(height: int, width: int, longest: int) -> tuple[int, int]:
    """(h, w) with the longest side `longest` and the aspect ratio kept; never larger than the input."""
    scale = min(1.0, longest / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def downscale(frames: np.ndarray | torch.Tensor, longest: int) -> torch.Tensor:
    """Antialiased bilinear downscale of RGB frames to a longest side of `longest` pixels.

    (n, H, W, 3) uint8 -> (n, h, w, 3) uint8 tensor. Runs on uint8 in channels-last layout (torch's fast
    path, about 30x faster than on float); frames already small enough are returned as they are.
    """
    x = torch.as_tensor(frames)
    height, width = x.shape[1:3]
    size = small_shape(height, width, longest)
    if size == (height, width):
        return x
    x = x.permute(0, 3, 1, 2)  # (n, H, W, 3) -> (n, 3, H, W) with channels-last strides, no copy
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.permute(0, 2, 3, 1)  # (n, 3, h, w) -> (n, h, w, 3)


def load_detector(device: str | torch.device = "cpu", cfg: FaceConfig = FaceConfig()) -> MTCNN:
    """MTCNN with the weights shipped in the facenet-pytorch wheel (no download), in eval mode.

    For `cfg.follow` "refine" its three nets run on channels-last input (`ChannelsLast`).
    """
    detector = MTCNN(
        keep_all=True,
        device=torch.device(device),
        select_largest=False,
        post_process=False,
        min_face_size=cfg.min_face_size,
        thresholds=list(cfg.thresholds),
        factor=cfg.factor,
    )
    if cfg.follow == "refine":
        detector.pnet, detector.rnet, detector.onet = (
            ChannelsLast(detector.pnet),
            ChannelsLast(detector.rnet),
            ChannelsLast(detector.onet),
        )
    return detector.eval()


class ChannelsLast(torch.nn.Module):
    """One of MTCNN's nets on channels-last input, its convolution weights channels-last too: the same
    outputs (to float rounding; checked by the tests) at about 55 % of the time on the CPU, where its NCHW
    max-pooling is slow (and a tenth less with the weights in the input's layout)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> Any:
        return self.net(x.contiguous(memory_format=torch.channels_last))


def _as_detections(boxes: object, scores: object, points: object) -> FrameDetections:
    """One frame of `MTCNN.detect` output (None, or object-dtype arrays under numpy 2) as float32 arrays."""
    if boxes is None or points is None or len(boxes) == 0:  # type: ignore[arg-type]
        return FrameDetections.empty()
    box = np.asarray(np.stack(list(boxes)), dtype=np.float32).reshape(-1, 4)  # type: ignore[call-overload]
    score = np.asarray(list(scores), dtype=np.float32).reshape(-1)  # type: ignore[call-overload]
    marks = np.asarray(np.stack(list(points)), dtype=np.float32).reshape(-1, 5, 2)  # type: ignore[call-overload]
    order = np.argsort(-score, kind="stable")
    return FrameDetections(box[order], score[order], marks[order])


def _detect_batch(frames: torch.Tensor, detector: MTCNN) -> list[FrameDetections]:
    """MTCNN on (n, h, w, 3) float frames in [0, 255]; one FrameDetections per frame."""
    with torch.autocast(device_type=frames.device.type, enabled=False), torch.inference_mode():
        boxes, scores, points = detector.detect(frames, landmarks=True)
    return [_as_detections(boxes[i], scores[i], points[i]) for i in range(len(frames))]


def detect_faces(
    frames: np.ndarray | torch.Tensor, detector: MTCNN, batch_size: int = 32
) -> list[FrameDetections]:
    """Faces in each frame of `frames` (n, h, w, 3) RGB, uint8 or float in [0, 255], all of one size.

    Coordinates are in pixels of the given frames. A batch that MTCNN cannot process (it fails on some
    degenerate candidate sets) is retried frame by frame; a frame that still fails has no face.
    """
    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (n, h, w, 3), got {tuple(x.shape)}")
    out: list[FrameDetections] = []
    for first in range(0, len(x), batch_size):
        batch = x[first : first + batch_size].to(detector.device)
        try:
            out.extend(_detect_batch(batch, detector))
        except (RuntimeError, ValueError, IndexError) as err:
            log.warning("MTCNN failed on a batch (%s); retrying frame by frame", err)
            for i in range(len(batch)):
                try:
                    out.extend(_detect_batch(batch[i : i + 1], detector))
                except (RuntimeError, ValueError, IndexError):
                    out.append(FrameDetections.empty())
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (..., 4) and b (..., 4), broadcast."""
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-6)
