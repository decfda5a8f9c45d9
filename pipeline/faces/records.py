"""What the face tracker produces and reasons with: per-frame `FaceRecords`, one face `Det`, and the tests
of whether two faces at two frames are one face moving smoothly (`linked`, `jump`, `velocity`).

Sources of a record (`SOURCES`): "detected" (MTCNN on the whole frame found the face in this frame),
"refined" (found in this frame by refinement near its last box, `pipeline.faces.refine`), "tracked" (no
detector accepted the face in this frame; its box follows it: between two linked faces, no frame between
looked at, box and landmarks interpolated; or carried on from the frame before by its appearance where
refinement's O-Net no longer accepts it, `pipeline.faces.carry`, score 0), "interpolated"
(a short gap where frames were looked at and no face found, filled from both sides), "none" (no face).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import box_iou

POSITIONS = ("main", "left", "right")
SOURCES = ("detected", "refined", "tracked", "interpolated", "none")


class Chunk(Protocol):
    """Consecutive frames of one video, as `FaceTracker.push` takes them (a decoded `FrameChunk` is one)."""

    @property
    def start(self) -> int: ...  # 0-based decode index of frames[0]

    @property
    def frames(self) -> np.ndarray: ...  # (n, H, W, 3) uint8 RGB


@dataclass
class FaceRecords:
    """The face of one subject position in consecutive frames."""

    index: np.ndarray  # (n,) int32 decode index
    face: np.ndarray  # (n,) bool: a face box and landmarks are known
    box: np.ndarray  # (n, 4) float32 x1, y1, x2, y2 in full-frame pixels (0 where no face)
    landmarks: np.ndarray  # (n, 5, 2) float32 full-frame pixels: eyes, nose, mouth corners (0 where no face)
    score: np.ndarray  # (n,) float32 detection score (interpolated between detections; 0 where no face)
    source: np.ndarray  # (n,) str: one of SOURCES

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def empty() -> FaceRecords:
        """No frames."""
        return FaceRecords(
            np.zeros(0, np.int32),
            np.zeros(0, bool),
            np.zeros((0, 4), np.float32),
            np.zeros((0, 5, 2), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, "<U12"),
        )

    @staticmethod
    def concat(parts: Sequence[FaceRecords]) -> FaceRecords:
        """Records of consecutive parts joined in order."""
        if not parts:
            return FaceRecords.empty()
        return FaceRecords(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in FaceRecords.__dataclass_fields__)
        )


class Det(NamedTuple):
    """One face assigned to a position in one frame (full-frame pixels)."""

    box: np.ndarray  # (4,) float32
    landmarks: np.ndarray  # (5, 2) float32
    score: float
    source: str = "detected"  # "detected" (whole-frame MTCNN), "refined" (near the face's last box) or
    # "tracked" (carried on from the frame before by its appearance, or interpolated)
    carried: int = 0  # frames carried on by appearance since a face a detector accepted (0: accepted here)
    accepted: float = 0.0  # carried: the side of the box of that face (its height)

    @property
    def side(self) -> float:
        """The side (height) of the box of the face a detector last accepted: this one's, or where it was
        carried on, that face's."""
        return self.accepted if self.carried else float(self.box[3] - self.box[1])


def linked(a: Det | None, b: Det | None, cfg: FaceConfig, speed: np.ndarray | None, steps: int) -> bool:
    """Whether faces `a` and `b` of one position, `steps` frames apart at two consecutive samples, are
    one face moving smoothly (so that the frames between need not be looked at): IoU of `b` with `a` >=
    `track_iou`, or with `a` moved on at `speed` (box change per frame, where known) >= `motion_iou`."""
    if a is None or b is None:
        return a is None and b is None
    if float(box_iou(a.box, b.box)) >= cfg.track_iou:
        return True
    return speed is not None and float(box_iou(a.box + speed * steps, b.box)) >= cfg.motion_iou


def jump(a: Det, b: Det) -> bool:
    """Two faces too far apart to be one face moving: disjoint, centres more than a box width apart."""
    return apart(a.box, b.box)


def apart(a: np.ndarray, b: np.ndarray) -> bool:
    """`jump` of two boxes (4,)."""
    if float(box_iou(a, b)) > 0:
        return False
    width = (a[2] - a[0] + b[2] - b[0]) / 2
    centre = (a[:2] + a[2:] - b[:2] - b[2:]) / 2
    return float(np.hypot(*centre)) > width


def about(centre: np.ndarray, size: np.ndarray | float) -> np.ndarray:
    """The box (4,) float32 of `size` (width, height (2,), or one side) about `centre` (2,)."""
    half = np.broadcast_to(np.asarray(size, np.float64), (2,)) / 2
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def centre_of(box: np.ndarray) -> np.ndarray:
    """The centre (2,) of a box (4,)."""
    return (box[:2] + box[2:]) / 2


def velocity(a: Det | None, b: Det | None, steps: int) -> np.ndarray | None:
    """Box change per frame from `a` to `b`, `steps` frames later; None unless both are known."""
    return None if a is None or b is None else (b.box - a.box) / steps
