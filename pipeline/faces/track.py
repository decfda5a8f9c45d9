"""Face tracking: one face per subject position through a video, from sparse MTCNN detections.

`FaceTracker` takes chunks of consecutive frames in order (any object with `start` and `frames`, such as
`pipeline.video.decode.FrameChunk`) and returns `FaceRecords` per position ("main", "left",
"right"). How faces are followed between samples is `FaceConfig.follow`: "refine" (the default) looks
for each face near its last box with MTCNN's R-Net and O-Net on full-resolution crops and detects whole
frames only now and then (`pipeline.faces.follow`, where that mode is described); the rest of this
paragraph is "detect", the method before it.

The detector runs on every `every`-th frame (the samples), downscaled to `work_size`. Between two
samples where every position keeps its face (IoU >= `track_iou`, or IoU >= `motion_iou` with the box moved
on at the face's speed over the previous two samples) or stays without one, the frames in between are not
detected: boxes and landmarks are interpolated (source "tracked"). Where a face appears,
disappears, jumps or is missed, every frame between the two samples is detected, so appearances and
losses are found to the frame. Gaps of at most `max_gap` frames between two detections of one face are
filled by interpolation (source "interpolated"); longer gaps, and frames before the first or after the
last detection, have no face (source "none"). In "refine" mode a face is also "refined", and a gap that
holds a frame where refinement looked for the face and found none is not filled.

Positions: "main" is the largest face (area x score) and stays on it by IoU continuity, moving to another
face only when that one is `switch_ratio` times stronger; "left" / "right" are the left and the right of
the two strongest faces, kept apart by IoU continuity when both were seen recently.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

import numpy as np
import torch
from facenet_pytorch import MTCNN

from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import FrameDetections, box_iou, detect_faces, downscale, load_detector
from pipeline.faces.follow import Follower
from pipeline.faces.records import (
    POSITIONS,
    SOURCES,
    Chunk,
    Det,
    FaceRecords,
    centre_of,
    jump,
    linked,
    velocity,
)

__all__ = ["POSITIONS", "SOURCES", "Chunk", "FaceRecords", "FaceTracker"]


class FaceTracker(Follower):
    """Streaming face tracker: `push` chunks in order, then `flush`; records come out in frame order.

    `push` returns the records of the frames that are final so far. They lag the pushed frames by the
    frames after the last sample (< `every`), and where a face was lost by up to `max_gap + 1` frames more
    (until it is known whether the face comes back within `max_gap`). `flush` returns the rest.
    Every frame pushed gets exactly one record per position.
    """

    def __init__(
        self,
        cfg: FaceConfig = FaceConfig(),
        positions: tuple[str, ...] = ("main",),
        detector: MTCNN | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> None:
        unknown = set(positions) - set(POSITIONS)
        if unknown or not positions:
            raise ValueError(f"positions must be a non-empty subset of {POSITIONS}, got {positions}")
        self.cfg = cfg
        self.positions = tuple(positions)
        self.detector = detector if detector is not None else load_detector(cfg=cfg)
        self.frame_size = frame_size  # (H, W) of the full frames; taken from the first chunk if None
        self.detected_frames = 0  # frames the detector ran on (for throughput reports)
        self.refined_boxes = 0  # boxes refinement looked at (follow "refine")
        self.deep_frames = 0  # frames detected whole at `deep_size` (every other one `fine_size`; "refine")
        self._seen = 0  # frames pushed
        self._emitted = 0  # frames returned
        self._frontier = 0  # frames < frontier are settled: detected, or between two linked samples
        self._tail: dict[int, torch.Tensor] = {}  # small frames after the last sample: (h, w, 3) uint8
        self._tried: set[int] = set()  # frames the detector ran on, not yet returned
        self._dets: dict[str, dict[int, Det]] = {p: {} for p in self.positions}
        self._det_frames: dict[str, list[int]] = {p: [] for p in self.positions}  # sorted keys of _dets
        self._last: dict[str, tuple[int, np.ndarray] | None] = {p: None for p in self.positions}
        self._last_sample: int | None = None
        self._last_assign: dict[str, Det | None] = {p: None for p in self.positions}
        self._velocity: dict[str, np.ndarray | None] = {p: None for p in self.positions}  # box change/frame
        self._full: dict[int, np.ndarray] = {}  # follow "refine": full frames after the last sample (views)
        self._trail: dict[str, list[tuple[int, np.ndarray]]] = {p: [] for p in self.positions}
        self._refuted: dict[str, set[int]] = {p: set() for p in self.positions}  # no face where refined
        self._last_full = -(10**9)  # follow "refine": last frame detected whole
        self._last_search = -(10**9)  # follow "refine": last frame detected at `search_size`
        self._last_deep = -(10**9)  # follow "refine": last frame detected at `deep_size`

    # ---- detection -------------------------------------------------------------------------------

    def _detect(
        self, indices: list[int], small: Callable[[list[int]], torch.Tensor]
    ) -> dict[int, FrameDetections]:
        """Detections (full-frame pixels, score >= min_score, boxes clipped to the frame) per frame."""
        assert self.frame_size is not None
        height, width = self.frame_size
        frames = small(indices)  # (m, h, w, 3) uint8, longest side `work_size`
        h, w = frames.shape[1:3]
        found = detect_faces(frames, self.detector, self.cfg.batch_size)
        self.detected_frames += len(indices)
        out = {}
        for i, fd in zip(indices, found, strict=True):
            fd = fd.scaled(width / w, height / h)
            keep = fd.scores >= self.cfg.min_score
            box = fd.boxes[keep]
            box[:, [0, 2]] = box[:, [0, 2]].clip(0, width)
            box[:, [1, 3]] = box[:, [1, 3]].clip(0, height)
            out[i] = FrameDetections(box, fd.scores[keep], fd.landmarks[keep])
        return out

    # ---- association -----------------------------------------------------------------------------

    def _recent(
        self, last: dict[str, tuple[int, np.ndarray] | None], pos: str, frame: int
    ) -> np.ndarray | None:
        entry = last[pos]
        if entry is None or frame - entry[0] > self.cfg.max_gap + self.cfg.every:
            return None
        return entry[1]

    def _associate(
        self,
        fd: FrameDetections,
        last: dict[str, tuple[int, np.ndarray] | None],
        frame: int,
        faces: Sequence[Det] | None = None,
    ) -> dict[str, Det | None]:
        """Which detection each position takes in `frame`; updates `last` (position -> (frame, box)).
        `faces`: the faces behind the rows of `fd`, taken as they are (how each was found, the frames it
        has been carried on); default: every row a whole-frame detection."""
        cfg = self.cfg
        choice: dict[str, int | None] = {p: None for p in self.positions}
        if len(fd):
            strength = (fd.boxes[:, 2] - fd.boxes[:, 0]) * (fd.boxes[:, 3] - fd.boxes[:, 1]) * fd.scores
            if "main" in choice:
                best = int(np.argmax(strength))
                prev = self._recent(last, "main", frame)
                if prev is not None:
                    iou = box_iou(prev[None], fd.boxes)
                    cont = int(np.argmax(iou))
                    if iou[cont] >= cfg.track_iou and strength[best] <= cfg.switch_ratio * strength[cont]:
                        best = cont
                choice["main"] = best
            if "left" in choice or "right" in choice:
                choice.update(self._left_right(fd, strength, last, frame))
        assign: dict[str, Det | None] = {}
        for pos, k in choice.items():
            if k is None:
                assign[pos] = None
                continue
            assign[pos] = (
                Det(fd.boxes[k], fd.landmarks[k], float(fd.scores[k])) if faces is None else faces[k]
            )
            last[pos] = (frame, fd.boxes[k])
        return {p: assign[p] for p in self.positions}

    def _left_right(
        self,
        fd: FrameDetections,
        strength: np.ndarray,
        last: dict[str, tuple[int, np.ndarray] | None],
        frame: int,
    ) -> dict[str, int | None]:
        """The left and right of the two strongest faces, kept consistent with recent boxes."""
        top = [int(k) for k in np.argsort(-strength, kind="stable")[:2]]
        cx = (fd.boxes[:, 0] + fd.boxes[:, 2]) / 2
        prev = {p: self._recent(last, p, frame) if p in self.positions else None for p in ("left", "right")}
        if len(top) == 2:
            a, b = sorted(top, key=lambda k: cx[k])  # a is further left
            if prev["left"] is not None and prev["right"] is not None:
                keep = box_iou(prev["left"], fd.boxes[a]) + box_iou(prev["right"], fd.boxes[b])
                swap = box_iou(prev["left"], fd.boxes[b]) + box_iou(prev["right"], fd.boxes[a])
                if swap > keep:
                    a, b = b, a
            elif self.cfg.follow == "refine" and (prev["left"] is not None or prev["right"] is not None):
                # one side seen recently: it keeps the face nearer its box (the other may have crossed)
                q = "left" if prev["left"] is not None else "right"
                centre = centre_of(prev[q])  # type: ignore[arg-type]
                near = min((a, b), key=lambda k: float(np.hypot(*(centre - centre_of(fd.boxes[k])))))
                far = b if near == a else a
                a, b = (near, far) if q == "left" else (far, near)
            return {"left": a, "right": b}
        (k,) = top  # one face: the side of the nearer recent face, or its side of the frame
        centres = {p: (box[0] + box[2]) / 2 for p, box in prev.items() if box is not None}
        if len(centres) == 2:
            side = min(centres, key=lambda p: abs(centres[p] - cx[k]))
        elif len(centres) == 1:
            ((p, c),) = centres.items()
            near = abs(c - cx[k]) < fd.boxes[k, 2] - fd.boxes[k, 0]  # within a face width: the same face
            side = p if near else ("right" if cx[k] > c else "left")
        else:
            assert self.frame_size is not None
            side = "left" if cx[k] < self.frame_size[1] / 2 else "right"
        return {"left": k if side == "left" else None, "right": k if side == "right" else None}

    # ---- processing ------------------------------------------------------------------------------

    def _process(self, samples: list[int], small: Callable[[list[int]], torch.Tensor]) -> None:
        """Detect the samples, and every frame between two samples where some position changed."""
        if not samples:
            return
        dets = self._detect(samples, small)
        last = dict(self._last)
        prev, prev_assign, speed = self._last_sample, self._last_assign, self._velocity
        refine: list[int] = []
        for s in samples:  # provisional association: which segments need every frame detected
            assign = self._associate(dets[s], last, s)
            if prev is not None and s - prev > 1:
                steps = s - prev
                if not all(
                    linked(prev_assign[p], assign[p], self.cfg, speed[p], steps) for p in self.positions
                ):
                    refine.extend(range(prev + 1, s))
            if prev is not None:
                speed = {p: velocity(prev_assign[p], assign[p], s - prev) for p in self.positions}
            prev, prev_assign = s, assign
        if refine:
            dets.update(self._detect(refine, small))
        for frame in sorted(dets):  # final association, in frame order
            assign = self._associate(dets[frame], self._last, frame)
            self._tried.add(frame)
            for pos, det in assign.items():
                if det is not None:
                    self._dets[pos][frame] = det
                    self._det_frames[pos].append(frame)
        self._last_sample, self._last_assign, self._velocity = samples[-1], assign, speed
        self._frontier = samples[-1] + 1

    def push(self, chunk: Chunk) -> dict[str, FaceRecords]:
        """Take the next chunk (decode order, no gaps); records of the frames that became final."""
        stop = chunk.start + len(chunk.frames)
        if chunk.start != self._seen:
            raise ValueError(f"chunk starts at frame {chunk.start}, expected {self._seen}")
        size = tuple(chunk.frames.shape[1:3])
        if self.frame_size is None:
            self.frame_size = size  # type: ignore[assignment]
        elif size != tuple(self.frame_size):
            raise ValueError(f"frame size {size} differs from {self.frame_size}")
        every = self.cfg.every
        first = -(-chunk.start // every) * every
        samples = list(range(first, stop, every))
        if self.cfg.follow == "refine":
            self._full.update(zip(range(chunk.start, stop), chunk.frames, strict=True))
            self._follow(samples, self._small_of_full)
            self._seen = stop
            out = self._emit(final=False)
            # kept: frames not yet returned, and the last sample's (a face is followed on from it)
            oldest = min(self._emitted, self._emitted if self._last_sample is None else self._last_sample)
            self._full = {i: f for i, f in self._full.items() if i >= oldest}
            return out
        small = self._small_frames(chunk)
        self._process(samples, small)
        after = self._last_sample + 1 if self._last_sample is not None else 0
        self._tail = {i: f for i, f in self._tail.items() if i >= after}
        keep = list(range(max(after, chunk.start), stop))
        if keep:
            self._tail.update(zip(keep, small(keep).unbind(0), strict=True))
        self._seen = stop
        return self._emit(final=False)

    def flush(self) -> dict[str, FaceRecords]:
        """Records of all frames not yet returned (detects the last frame when it was no sample)."""
        last = self._seen - 1
        if last >= 0 and (self._last_sample is None or last > self._last_sample):
            if self.cfg.follow == "refine":
                self._follow([last], self._small_of_full)
            else:
                self._process([last], lambda idx: torch.stack([self._tail[i] for i in idx]))
        self._tail, self._full = {}, {}
        return self._emit(final=True)

    def _small_frames(self, chunk: Chunk) -> Callable[[list[int]], torch.Tensor]:
        """A function: decode indices (in this chunk or the kept tail) -> (m, h, w, 3) uint8 frames."""

        def small(indices: list[int]) -> torch.Tensor:
            inside = [i - chunk.start for i in indices if i >= chunk.start]
            new = downscale(chunk.frames[inside], self.cfg.work_size)  # (m, H, W, 3) -> (m, h, w, 3)
            old = [self._tail[i] for i in indices if i < chunk.start]
            return torch.cat([torch.stack(old), new]) if old else new

        return small

    def _small_of_full(self, indices: list[int]) -> torch.Tensor:
        """Detection frames (m, h, w, 3) uint8 of kept full frames (follow "refine")."""
        return torch.cat([downscale(self._full[i][None], self.cfg.work_size) for i in indices])

    # ---- records ---------------------------------------------------------------------------------

    def _settled(self, pos: str, frame: int, final: bool) -> bool:
        """Whether the record of `frame` for `pos` can no longer change."""
        if frame >= self._frontier and not final:  # not looked at yet: a face may still be found here
            return False
        frames = self._det_frames[pos]
        i = bisect_left(frames, frame)
        if i < len(frames):  # detected here, or a later detection closes the gap
            return True
        if final:
            return True
        # follow "refine": a face found later may still be followed back to frames this close
        back = self.cfg.look_back if self.cfg.follow == "refine" else 0
        if self._frontier - frame <= back:
            return False
        return i == 0 or self._frontier - frames[i - 1] - 1 > self.cfg.max_gap  # no later face can close it

    def _record(self, pos: str, frame: int) -> tuple[Det | None, str]:
        det = self._dets[pos].get(frame)
        if det is not None:
            return det, det.source
        frames = self._det_frames[pos]
        i = bisect_right(frames, frame)
        if i == 0 or i == len(frames):
            return None, "none"
        p, n = frames[i - 1], frames[i]
        tried = any(f in self._tried for f in range(p + 1, n))
        if n - p - 1 > self.cfg.max_gap or any(f in self._refuted[pos] for f in range(p + 1, n)):
            return None, "none"
        a, b = self._dets[pos][p], self._dets[pos][n]
        t = (frame - p) / (n - p)
        if jump(a, b):  # another face, or the same one elsewhere: hold the nearer detection
            t = float(round(t))
        det = Det(
            (1 - t) * a.box + t * b.box,
            (1 - t) * a.landmarks + t * b.landmarks,
            (1 - t) * a.score + t * b.score,
            "tracked",
        )
        return det, "interpolated" if tried else "tracked"

    def _emit(self, final: bool) -> dict[str, FaceRecords]:
        stop = self._seen
        for pos in self.positions:
            for frame in range(self._emitted, stop):
                if not self._settled(pos, frame, final):
                    stop = frame
                    break
        frames = range(self._emitted, stop)
        out = {}
        for pos in self.positions:
            recs = [self._record(pos, f) for f in frames]
            n = len(recs)
            box, marks = np.zeros((n, 4), np.float32), np.zeros((n, 5, 2), np.float32)
            score = np.zeros(n, np.float32)
            for j, (det, _) in enumerate(recs):
                if det is not None:
                    box[j], marks[j], score[j] = det.box, det.landmarks, det.score
            out[pos] = FaceRecords(
                index=np.arange(self._emitted, stop, dtype=np.int32),
                face=np.array([det is not None for det, _ in recs], bool),
                box=box,
                landmarks=marks,
                score=score,
                source=np.array([src for _, src in recs], "<U12"),
            )
        self._emitted = stop
        self._prune()
        return out

    def _prune(self) -> None:
        """Forget detections no later record needs (all but the last one before the first open frame)."""
        keep_from = self._emitted
        for pos in self.positions:
            frames = self._det_frames[pos]
            i = max(bisect_left(frames, self._emitted) - 1, 0)
            for f in frames[:i]:
                del self._dets[pos][f]
            self._det_frames[pos] = frames[i:]
            if self._det_frames[pos]:
                keep_from = min(keep_from, self._det_frames[pos][0])
        self._tried = {f for f in self._tried if f >= keep_from}
        self._refuted = {p: {f for f in r if f >= keep_from} for p, r in self._refuted.items()}
