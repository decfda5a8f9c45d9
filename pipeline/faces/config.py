"""`FaceConfig`: the settings of the face stage (detection in `pipeline.faces.detect`, tracking in
`pipeline.faces.track`); `AlignConfig` and its template: how faces are cropped (`pipeline.faces.align`).
Imports no torch, so that whoever only describes a run (the extraction's driver) loads no detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class FaceConfig:
    """Settings of the face stage: detection, subject tracking and gap filling."""

    work_size: int = 320  # longest side (pixels) of the frames MTCNN sees; full frames are downscaled
    every: int = 5  # run the detector on every k-th frame (plus the frames around a change, see track)
    min_face_size: int = 24  # smallest face MTCNN looks for, in pixels of the detection frame
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # MTCNN P-, R-, O-net score thresholds
    factor: float = 0.709  # MTCNN image pyramid scale step
    min_score: float = 0.9  # detections scoring lower are ignored
    track_iou: float = 0.3  # a detection continues a track when its IoU with the track's box is >= this
    motion_iou: float = 0.5  # ... or with the box moved on at the face's speed (linear motion)
    max_gap: int = 8  # fill at most this many frames between two detections of one face; longer: no face
    switch_ratio: float = 2.0  # "main" moves to another face only if its area x score is this many times more
    batch_size: int = 32  # frames per MTCNN call
    # How a face is followed between full detections (pipeline.faces.track): "refine" looks for each
    # subject's face near its last box, on a crop of the full-resolution frame, with MTCNN's R-Net and
    # O-Net (pipeline.faces.refine), and detects whole frames only every `detect_every` frames, where a
    # position has no face, or where refinement fails; "detect" detects whole (downscaled) frames at every
    # sample and on every frame between two samples where a face changed (the method before refinement).
    follow: Literal["refine", "detect"] = "refine"
    # "refine": most frames between two full detections while every position has its face (new faces, "main"
    # moving to a stronger one, a carried face's box); refinement follows each face between them. 45 rather
    # than 30: a fifth fewer whole-frame detections on the bench's hard sets (figures in the README)
    detect_every: int = 45
    # "refine": frames over which a lost face is looked for: its last box is expected for this many frames, and
    # while a position has no face the frame is detected at `search_size` at most once per span (and at
    # `deep_size` for a lost face too small for that view, for this many frames after it)
    lost_span: int = 30
    refine_face: int = 128  # "refine": face side in pixels of the refinement crop (the crop's resolution)
    refine_margin: float = 2.5  # "refine": crop side in face sides (the search reaches ~0.6 face sides away)
    # "refine": R-Net and O-Net score thresholds inside a live track (a new face needs `thresholds` and
    # `min_score`); the O-Net score gates every refined box
    refine_thresholds: tuple[float, float] = (0.3, 0.5)
    stretch: tuple[float, float] = (2.0, 98.0)  # "refine": luminance percentiles of the face stretched ...
    max_gain: float = 4.0  # "refine": ... by at most this gain (contrast normalisation of the crop)
    # "refine": a frame whose contrast would be stretched at least this much (a dim or flat picture) is
    # detected whole with its contrast normalised (above max_gain: never)
    lift_gain: float = 2.5
    # "refine": where a position is still without a face, the frame is also detected with this longest
    # side (small faces), at most once every `lost_span` frames; <= work_size: never
    search_size: int = 640
    # "refine": while a position has no face, a whole-frame detection at most every this many frames
    # (a face found is followed back to where it appeared, see look_back)
    search_every: int = 15
    # "refine": where no face at all has been seen for `deep_every` frames (or yet), or a position lost a
    # face too small for `search_size` (at most every `search_every` frames), the frame is also detected
    # with this longest side (at most the frame's own): in 1080p, faces of about 36 to 72 pixels;
    # <= search_size: never
    deep_size: int = 1280
    deep_every: int = 30
    # "refine": every other look at `deep_size` (the second, the fourth, ...) is made at this longest side
    # instead (at most the frame's own): in 1080p, faces of about 24 to 36 pixels, which the look before
    # missed; <= deep_size: never
    fine_size: int = 1920
    # "refine": a face found is followed back over at most this many earlier frames (as many as between
    # two deep looks: a face that one finds may have been there since the one before)
    look_back: int = 30
    # "refine": a face refinement loses in its track (O-Net scores a head turned past ~60 degrees far below
    # its threshold) is carried on frame by frame by its appearance (pipeline.faces.carry), at most this
    # many frames from a face O-Net accepted; 0: never
    carry_frames: int = 60
    carry_similarity: float = 0.8  # ... where a box near the expected one correlates this much with the last

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.max_gap < self.every - 1:
            raise ValueError(f"max_gap ({self.max_gap}) must be >= every - 1 ({self.every - 1})")
        if self.work_size < 32 or self.min_face_size < 12:
            raise ValueError("work_size must be >= 32 and min_face_size >= 12")
        if self.follow not in ("refine", "detect"):
            raise ValueError(f"follow must be 'refine' or 'detect', got {self.follow!r}")
        if self.detect_every < self.every or self.refine_face < 24 or self.refine_margin < 1.0:
            raise ValueError("detect_every must be >= every, refine_face >= 24 and refine_margin >= 1")
        if self.lost_span < self.every or not self.every <= self.search_every <= self.lost_span:
            raise ValueError("lost_span must be >= every, and search_every between every and lost_span")
        if self.deep_every < self.search_every:
            raise ValueError("deep_every must be >= search_every")
        if self.carry_frames < 0 or not -1.0 <= self.carry_similarity <= 1.0:
            raise ValueError("carry_frames must be >= 0 and carry_similarity in [-1, 1]")
        if self.look_back < 0 or self.max_gain < 1.0 or not 0 <= self.stretch[0] < self.stretch[1] <= 100:
            raise ValueError("max_gain must be >= 1 and stretch two increasing percentiles")


# insightface's arcface_dst: left eye, right eye, nose tip, left and right mouth corner in a 112 x 112 crop
ARCFACE_112 = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


def canonical_template(zoom: float = 0.85, lift: float = 18.0) -> tuple[tuple[float, float], ...]:
    """ArcFace's template doubled to a 224 crop, shrunk by `zoom` about the centre, raised by `lift` px."""
    points = (np.asarray(ARCFACE_112) - 56.0) * 2.0 * zoom + 112.0 - np.array([0.0, lift])
    return tuple((round(float(x), 4), round(float(y), 4)) for x, y in points)


DEFAULT_TEMPLATE = canonical_template()


@dataclass(frozen=True)
class AlignConfig:
    """How faces are cropped."""

    size: int = 224  # side of the square output crop, pixels
    template: tuple[tuple[float, float], ...] = (
        DEFAULT_TEMPLATE  # 5 (x, y) targets in a 224 crop (scaled to size)
    )
    # faces per grid_sample call: two, so that each call's float window, grid and output stay in the CPU's
    # caches (per crop on one core: 1.1 ms at 2, 1.4 at 8, 2.0 to 2.4 at 32); a crop value may move by one
    # level with it, as the batch sets the window the grid is normalised to
    batch_size: int = 2
    max_shrink: int = 8  # largest integer pre-shrink of faces much larger than the crop

    def __post_init__(self) -> None:
        if len(self.template) != 5 or any(len(p) != 2 for p in self.template):
            raise ValueError("template must hold 5 (x, y) points")

    def template_points(self) -> np.ndarray:
        """(5, 2) float64 template in pixels of a `size` crop."""
        return np.asarray(self.template, np.float64) * (self.size / 224.0)
