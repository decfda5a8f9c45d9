"""Following faces by refinement (`FaceConfig.follow` "refine"): the part of `FaceTracker` that decides, per
sample, where whole frames are detected and where each subject's face is looked for near its last box.

At each sample (every `every`-th frame) every position whose face was seen recently is refined near
where it is expected (its last box moved on at its speed; `pipeline.faces.refine`). MTCNN runs on the
whole (downscaled) frame instead where a position has no recent face, where refinement fails, where two
positions would take one face, and at least every `detect_every` frames (new faces, "main" moving to a
stronger one); a face the whole-frame detection misses but refinement finds near its expected box is
kept ("refined"). Between two samples where a position's face is one face moving smoothly (`linked`),
nothing is looked at: the records are interpolated ("tracked"). Where it is not (the face appears,
disappears or jumps), the face is refined frame by frame forwards from its last box and backwards from
the sample's face; only frames that neither reaches while the face is known at both ends are detected
whole ("detected"). Every refined box passed the track's O-Net threshold in its own frame.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Sequence

import numpy as np
import torch
from facenet_pytorch import MTCNN

from pipeline.faces.detect import FaceConfig, FrameDetections, box_iou, downscale
from pipeline.faces.records import Det, linked
from pipeline.faces.refine import lift_contrast, refine_faces

Small = Callable[[list[int]], torch.Tensor]  # decode indices -> (m, h, w, 3) uint8 detection frames
CLASH_IOU = 0.5  # two positions' boxes overlapping this much are one face


def _pack(dets: list[Det]) -> tuple[FrameDetections, list[str]]:
    """Faces of one frame as `FrameDetections` and their sources."""
    if not dets:
        return FrameDetections.empty(), []
    return (
        FrameDetections(
            np.stack([d.box for d in dets]).astype(np.float32),
            np.array([d.score for d in dets], np.float32),
            np.stack([d.landmarks for d in dets]).astype(np.float32),
        ),
        [d.source for d in dets],
    )


def _fixed(frame: torch.Tensor) -> Small:
    """A `Small` that gives `frame` (h, w, 3) for its one index."""
    return lambda _: frame[None]


class Follower:
    """Refinement-mode processing of `FaceTracker` (a mixin: the tracker owns the state declared here)."""

    cfg: FaceConfig
    positions: tuple[str, ...]
    detector: MTCNN
    frame_size: tuple[int, int] | None
    refined_boxes: int  # boxes refinement looked at (for throughput reports)
    _frontier: int
    _emitted: int
    _tried: set[int]
    _dets: dict[str, dict[int, Det]]
    _det_frames: dict[str, list[int]]
    _last: dict[str, tuple[int, np.ndarray] | None]
    _last_sample: int | None
    _last_assign: dict[str, Det | None]
    _full: dict[int, np.ndarray]  # full-resolution frames not yet past the last sample: (H, W, 3) uint8 views
    _trail: dict[str, list[tuple[int, np.ndarray]]]  # per position: recent (frame, box) of its face
    _last_full: int  # last frame detected whole
    _last_search: int  # last frame detected whole at `search_size`

    def _detect(self, indices: list[int], small: Small) -> dict[int, FrameDetections]:
        raise NotImplementedError

    def _associate(
        self,
        fd: FrameDetections,
        last: dict[str, tuple[int, np.ndarray] | None],
        frame: int,
        sources: Sequence[str] | None = None,
    ) -> dict[str, Det | None]:
        raise NotImplementedError

    # ---- expectation ----------------------------------------------------------------------------

    def _speed(self, pos: str) -> np.ndarray | None:
        """Box change per frame of the position's face over its recent trail; None if unknown."""
        trail = self._trail[pos]
        if len(trail) < 2:
            return None
        f1, b1 = trail[-1]
        for f0, b0 in trail:  # the oldest entry within two samples of the newest
            if f1 - f0 <= 2 * self.cfg.every and f1 > f0:
                return (b1 - b0) / (f1 - f0)
        return None

    def _expected(self, pos: str, frame: int) -> np.ndarray | None:
        """Where the position's face is expected in `frame`: its last box moved on at its speed; None
        without a face in the last `max_gap + every` frames."""
        if not self._trail[pos]:
            return None
        last, box = self._trail[pos][-1]
        if frame - last > self.cfg.max_gap + self.cfg.every:
            return None
        speed = self._speed(pos)
        return box if speed is None else box + speed * (frame - last)

    # ---- refinement -----------------------------------------------------------------------------

    def _refine_at(
        self, frame: int, expect: dict[str, np.ndarray], taken: Sequence[np.ndarray] = ()
    ) -> dict[str, Det | None]:
        """The face of each position near its expected box in `frame`; None where refinement finds none,
        or where the face found is another position's (`taken` boxes, or a clash between two of these:
        the position whose expected box it overlaps less loses it)."""
        names = list(expect)
        if not names:
            return {}
        assert self.frame_size is not None
        height, width = self.frame_size
        boxes = np.stack([expect[n] for n in names])  # (k, 4)
        found = refine_faces([self._full[frame]] * len(names), boxes, self.detector, self.cfg)
        self.refined_boxes += len(names)
        out: dict[str, Det | None] = {}
        for name, f in zip(names, found, strict=True):
            if f is None:
                out[name] = None
                continue
            box = f.box.copy()
            box[[0, 2]] = box[[0, 2]].clip(0, width)
            box[[1, 3]] = box[[1, 3]].clip(0, height)
            out[name] = Det(box, f.landmarks, f.score, "refined")
        for i, a in enumerate(names):
            det_a = out[a]
            if det_a is None:
                continue
            if any(float(box_iou(det_a.box, t)) >= CLASH_IOU for t in taken):
                out[a] = None
                continue
            for b in names[i + 1 :]:
                det_b = out[b]
                if det_b is None or float(box_iou(det_a.box, det_b.box)) < CLASH_IOU:
                    continue
                if float(box_iou(det_a.box, expect[a])) >= float(box_iou(det_b.box, expect[b])):
                    out[b] = None
                else:
                    out[a] = None
                    break
        return out

    # ---- one sample -----------------------------------------------------------------------------

    def _follow(self, samples: list[int], small: Small) -> None:
        """Process the samples in order (refinement mode): each sample and the frames before it."""
        for s in samples:
            self._follow_sample(s, small)
        if samples:
            self._frontier = samples[-1] + 1

    def _whole(self, s: int, expect: dict[str, np.ndarray | None], small: Small) -> dict[str, Det | None]:
        """MTCNN on the whole frame `s`, with the faces it misses near their expected boxes added (found
        by refinement). Where a position is still without a face: the frame again with its contrast
        normalised if it is low (`lift_gain`), then at `search_size` (small faces; at most once every
        `detect_every` frames)."""
        cfg = self.cfg
        self._last_full = s
        # positions take faces near where they are expected (two subjects crossing keep their identity)
        last = {p: None if e is None else (s, e) for p, e in expect.items()}
        plain = small([s])[0]  # (h, w, 3) uint8
        faces: list[Det] = []
        assign: dict[str, Det | None] = dict.fromkeys(self.positions)
        for view in ("plain", "lifted", "search"):
            frame: torch.Tensor | None = plain
            if view == "lifted":
                frame = lift_contrast(plain, cfg)
            elif view == "search":
                frame = None
                if cfg.search_size > cfg.work_size and s - self._last_search >= cfg.detect_every:
                    frame = downscale(self._full[s][None], cfg.search_size)[0]
                    self._last_search = s
            if frame is None:
                continue
            fd = self._detect([s], _fixed(frame))[s]
            faces += [
                Det(b, m, float(c))
                for b, m, c in zip(fd.boxes, fd.landmarks, fd.scores, strict=True)
                if all(float(box_iou(b, d.box)) < CLASH_IOU for d in faces)
            ]
            if view == "plain":
                missed = {
                    p: e
                    for p, e in expect.items()
                    if e is not None and all(float(box_iou(e, d.box)) < cfg.track_iou for d in faces)
                }
                faces += [d for d in self._refine_at(s, missed, [d.box for d in faces]).values() if d]
            packed, sources = _pack(faces)
            assign = self._associate(packed, dict(last), s, sources)
            if all(d is not None for d in assign.values()):
                break
        return assign

    def _follow_sample(self, s: int, small: Small) -> None:
        cfg = self.cfg
        p, before = self._last_sample, self._last_assign
        expect = {pos: self._expected(pos, s) for pos in self.positions}
        assign: dict[str, Det | None] | None = None
        known = {pos: e for pos, e in expect.items() if e is not None}
        if p is not None and s - self._last_full < cfg.detect_every and len(known) == len(self.positions):
            found = self._refine_at(s, known)
            if all(d is not None for d in found.values()):
                assign = found
        if assign is None:
            assign = self._whole(s, expect, small)
        results: dict[int, dict[str, Det]] = {}
        looked: set[int] = set()
        if p is not None and s - p > 1:
            todo = [
                pos
                for pos in self.positions
                if not linked(before[pos], assign[pos], cfg, self._speed(pos), s - p)
            ]
            if todo:
                results, looked = self._between(p, s, todo, before, assign, small)
        self._tried.update(looked)
        for f in sorted(results):
            for pos, det in sorted(results[f].items()):
                self._put(pos, f, det)
        self._tried.add(s)
        for pos, got in assign.items():
            if got is not None:
                self._put(pos, s, got)
        self._last_sample, self._last_assign = s, assign

    def _put(self, pos: str, frame: int, det: Det) -> None:
        """Record the face of `pos` in `frame`: a frame after its last face, or one found looking back."""
        self._dets[pos][frame] = det
        insort(self._det_frames[pos], frame)
        trail = self._trail[pos]
        if trail and frame < trail[-1][0]:
            return
        self._last[pos] = (frame, det.box)
        trail.append((frame, det.box))
        while trail and frame - trail[0][0] > 2 * self.cfg.every:
            trail.pop(0)

    # ---- between two samples --------------------------------------------------------------------

    def _between(
        self,
        p: int,
        s: int,
        todo: list[str],
        before: dict[str, Det | None],
        after: dict[str, Det | None],
        small: Small,
    ) -> tuple[dict[int, dict[str, Det]], set[int]]:
        """Faces of the positions `todo` in frames p+1 .. s-1 (not linked between samples p and s):
        refined forwards from each face's last box, backwards from its face at s (and on back over the
        `look_back` frames before p not yet returned where the face was not found there), detected whole
        where neither reaches while the face is known at both ends. Returns them per frame and the
        frames looked at."""
        results: dict[int, dict[str, Det]] = {f: {} for f in range(min(p + 1, s - self.cfg.look_back), s)}
        looked: set[int] = set()

        def has(f: int, pos: str) -> bool:
            return pos in results[f] or f in self._dets[pos]

        def taken(f: int, pos: str) -> list[np.ndarray]:
            """Boxes of the other positions in frame f: found there, or between their linked faces."""
            boxes = [d.box for q, d in results[f].items() if q != pos]
            boxes += [self._dets[q][f].box for q in self.positions if q != pos and f in self._dets[q]]
            for q in self.positions:
                a, b = before[q], after[q]
                if p < f and q not in todo and a is not None and b is not None:
                    boxes.append(a.box + (b.box - a.box) * (f - p) / (s - p))
            return boxes

        def walk(frames: range, heads: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> None:
            for f in frames:
                heads = {pos: h for pos, h in heads.items() if not has(f, pos)}  # met the other pass
                heads = {pos: h for pos, h in heads.items() if f > p or before[pos] is None}
                if not heads:
                    return
                expect = {pos: box if v is None else box + v for pos, (box, v) in heads.items()}
                clash = {pos: taken(f, pos) for pos in heads}
                found = self._refine_at(f, expect, [b for pos in heads for b in clash[pos]])
                looked.add(f)
                for pos, det in found.items():
                    if det is None:
                        del heads[pos]
                        continue
                    results[f][pos] = det
                    box, v = heads[pos]
                    step = det.box - box
                    heads[pos] = (det.box, step if v is None else (v + step) / 2)

        forward: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for pos in todo:
            e = self._expected(pos, p + 1)
            if e is not None:
                speed = self._speed(pos)
                forward[pos] = (e if speed is None else e - speed, speed)
        walk(range(p + 1, s), forward)
        backward: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for pos in todo:
            det = after[pos]
            if det is not None:
                backward[pos] = (det.box, None)
        walk(range(s - 1, max(min(p + 1, s - self.cfg.look_back), self._emitted) - 1, -1), backward)
        both = [pos for pos in todo if before[pos] is not None and after[pos] is not None]
        unresolved = [f for f in range(p + 1, s) if any(pos not in results[f] for pos in both)]
        if unresolved:  # the face is known at both ends, refinement lost it: whole-frame detection
            dets = self._detect(unresolved, small)
            last = dict(self._last)
            for f in unresolved:
                assign = self._associate(dets[f], last, f)
                for pos in both:
                    det = assign[pos]
                    if pos not in results[f] and det is not None:
                        results[f][pos] = det
            looked.update(unresolved)
        return results, looked
