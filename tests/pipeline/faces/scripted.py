"""Scripted stand-ins for MTCNN and for refinement, for the tracker's logic: frame i of `chunks_of` has
its index written in its pixels, and a script says which faces (box, score) each one shows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pipeline.faces.carry import Carried
from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import box_iou
from pipeline.faces.refine import Found
from pipeline.faces.track import FaceRecords, FaceTracker
from pipeline.video.decode import FrameChunk

H, W = 90, 160  # scripted frames; work_size=W keeps them at full size
# today's method; and refinement with neither the contrast-lifted nor the larger search detection
# (a scripted frame's pixels only encode its index)
SCRIPT_CFG = FaceConfig(work_size=W, every=5, max_gap=8, follow="detect")
FOLLOW_CFG = FaceConfig(work_size=W, every=5, max_gap=8, follow="refine", lift_gain=5.0, search_size=W)
Script = Callable[[int], list]  # frame index -> [(box (4,), score)]


def marks_of(box) -> np.ndarray:
    """Five landmarks at fixed places of a box (so that interpolated landmarks can be checked)."""
    x1, y1, x2, y2 = box
    u = np.array([0.3, 0.7, 0.5, 0.35, 0.65])
    v = np.array([0.4, 0.4, 0.6, 0.8, 0.8])
    return np.stack([x1 + u * (x2 - x1), y1 + v * (y2 - y1)], axis=1)


def frame_index(frame) -> int:
    """The index written in a scripted frame (H, W, 3)."""
    return int(frame[0, 0, 0]) * 256 + int(frame[0, 0, 1])


class ScriptedDetector:
    """Stands in for MTCNN: frame i (its index is written in its pixels) shows the faces `script(i)`."""

    device = torch.device("cpu")

    def __init__(self, script: Script):
        self.script = script  # frame index -> list of (box, score)
        self.calls: list[int] = []

    def detect(self, frames, landmarks=True):
        index = (frames[:, 0, 0, 0].long() * 256 + frames[:, 0, 0, 1].long()).tolist()
        self.calls += index
        boxes, scores, points = [], [], []
        for i in index:
            faces = self.script(i)
            if not faces:
                boxes.append(None), scores.append([None]), points.append(None)
                continue
            boxes.append(np.array([f[0] for f in faces], dtype=object))
            scores.append(np.array([f[1] for f in faces], dtype=object))
            points.append(np.array([marks_of(f[0]) for f in faces], dtype=object))
        return np.array(boxes, dtype=object), np.array(scores, dtype=object), np.array(points, dtype=object)


class SizedDetector(ScriptedDetector):
    """A `ScriptedDetector` that sees, in a frame scaled to width w, only the faces of at least
    `min_face` pixels there (as MTCNN's `min_face_size`), with their boxes in its pixels."""

    def __init__(self, script: Script, min_face: float):
        super().__init__(script)
        self.min_face = min_face
        self.views: list[tuple[int, int]] = []  # (frame index, width it was detected at) per call

    def detect(self, frames, landmarks=True):
        k = frames.shape[2] / W  # the frame's scale
        self.views += [(frame_index(f.byte().numpy()), int(frames.shape[2])) for f in frames]
        seen = self.script

        def scaled(i: int) -> list:
            return [(np.asarray(b) * k, c) for b, c in seen(i) if (b[3] - b[1]) * k >= self.min_face]

        self.script = scaled
        try:
            return super().detect(frames, landmarks)
        finally:
            self.script = seen


class ScriptedRefiner:
    """Stands in for `refine_faces`: near an expected box in frame i it finds the face of `script(i)`
    that overlaps the box most, if that overlap is at least `reach` IoU."""

    def __init__(self, script: Script, reach: float = 0.2):
        self.script, self.reach = script, reach
        self.calls: list[int] = []

    def __call__(self, frames, boxes, detector, cfg, search=True) -> list[Found | None]:
        out: list[Found | None] = []
        for frame, expected in zip(frames, boxes, strict=True):
            i = frame_index(frame)
            self.calls.append(i)
            faces = [(np.asarray(b, np.float32), s) for b, s in self.script(i)]
            overlap = [float(box_iou(b, np.asarray(expected))) for b, _ in faces]
            if not faces or max(overlap) < self.reach:
                out.append(None)
                continue
            box, score = faces[int(np.argmax(overlap))]
            out.append(Found(box, marks_of(box).astype(np.float32), float(score)))
        return out


class ScriptedCarrier:
    """Stands in for `carry_faces`: near an expected box in frame i it finds, by "appearance", the face of
    `script(i)` that overlaps the box most (at least `reach` IoU)."""

    def __init__(self, script: Script, reach: float = 0.2):
        self.script, self.reach = script, reach
        self.calls: list[int] = []

    def __call__(self, frames, boxes, before, cfg) -> list[Carried | None]:
        out: list[Carried | None] = []
        for frame, expected in zip(frames, boxes, strict=True):
            i = frame_index(frame)
            self.calls.append(i)
            faces = [np.asarray(b, np.float32) for b, _ in self.script(i)]
            overlap = [float(box_iou(b, np.asarray(expected))) for b in faces]
            if not faces or max(overlap) < self.reach:
                out.append(None)
                continue
            box = faces[int(np.argmax(overlap))]
            out.append(Carried(box, marks_of(box).astype(np.float32), 0.95))
        return out


def chunks_of(n: int, size: int) -> list[FrameChunk]:
    """Frames 0..n-1, each one colour that encodes its index."""
    out = []
    for start in range(0, n, size):
        idx = np.arange(start, min(start + size, n))
        frames = np.zeros((len(idx), H, W, 3), np.uint8)
        frames[..., 0] = (idx // 256)[:, None, None]
        frames[..., 1] = (idx % 256)[:, None, None]
        out.append(FrameChunk(start=start, frames=frames))
    return out


def track(script: Script, n: int, chunk: int = 16, positions=("main",), cfg=SCRIPT_CFG, detector=None):
    """Run the tracker over n scripted frames; records per position, detector calls, per-push records.
    `detector`: a stand-in for MTCNN (default: a `ScriptedDetector` of `script`)."""
    detector = detector or ScriptedDetector(script)
    tracker = FaceTracker(cfg, positions, detector=detector)
    pushes = []
    for c in chunks_of(n, chunk):
        pushes.append((c, tracker.push(c)))
    rest = tracker.flush()
    parts = {p: [r[p] for _, r in pushes] + [rest[p]] for p in positions}
    return {p: FaceRecords.concat(v) for p, v in parts.items()}, detector.calls, pushes
