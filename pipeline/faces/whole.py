"""Whole-frame detection in refinement mode (`FaceConfig.follow` "refine"): the part of `FaceTracker` that
detects a whole frame when `pipeline.faces.follow` asks for it, adds the faces refinement finds near where
they are expected, and says which face each position takes.

The frame is detected at `work_size` (with its contrast normalised where it is dim or flat, `lift_gain`)
and, where a position is still without a face, at `search_size` (small faces; at most once every
`lost_span` frames), then, where no face at all has been seen for `deep_every` frames (or yet), at
`deep_size` (smaller faces, as in wide shots of 1080p video; at most once every `deep_every` frames), or
where a position's track of a face too small for the search view was lost (at most every `search_every`
frames, for `lost_span` frames after its last face). A face missing that was last seen next to one
found (its box grown by a face side on every side overlaps the found one's) is taken to be hidden behind
it, not tiny, and a short stretch without any larger face to be a face that left for a moment: neither
costs a look at `deep_size`; a lost small face last seen away from every face found still gets it.
Every other look at `deep_size` is made at `fine_size` instead (the frame's own 1920 pixels in 1080p):
which face sizes MTCNN's pyramid catches depends on the view's size, and a face just under the deep
view's reach (about 36 px in 1080p) is then found at the next deep look and followed back from there.
A face the detector finds where a position's face is only carried by its appearance (O-Net refused it)
replaces the carried box: the detector's box is a measurement, the carried one keeps the size of the
last face O-Net accepted, which may have grown off the face or no longer fit a face that changed.
A face the detector finds at well under its position's last size (`SHRUNK`; back after a moment away or
behind something) may be only what shows of a partly hidden face: it is refined again at that size over
it, and a larger face found there takes its place (`_regrown`).
"main" takes its face among all of them (and may move to a much stronger one); a left or right face
already found at the frame keeps its position, and the other takes the face nearest where it is
expected, so that two subjects passing each other keep their identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from facenet_pytorch import MTCNN

from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import FrameDetections, box_iou, downscale
from pipeline.faces.records import Det, about, centre_of
from pipeline.faces.refine import lift_contrast

Small = Callable[[list[int]], torch.Tensor]  # decode indices -> (m, h, w, 3) uint8 detection frames
CLASH_IOU = 0.5  # two positions' boxes overlapping this much are one face
SHRUNK = 0.6  # a face detected at under this share of its position's last side may be a part of that face
GROWN = 1.25  # ... which a face refined over it at that side replaces where this many times its side
NARROWER = 0.8  # ... looked for again at this share of that side where not found at it


def _pack(dets: list[Det]) -> FrameDetections:
    """Faces of one frame as `FrameDetections`."""
    if not dets:
        return FrameDetections.empty()
    return FrameDetections(
        np.stack([d.box for d in dets]).astype(np.float32),
        np.array([d.score for d in dets], np.float32),
        np.stack([d.landmarks for d in dets]).astype(np.float32),
    )


def _fixed(frame: torch.Tensor) -> Small:
    """A `Small` that gives `frame` (h, w, 3) for its one index."""
    return lambda _: frame[None]


class WholeFrames:
    """Whole-frame detection of `FaceTracker` in refinement mode (a mixin: the tracker owns the state)."""

    cfg: FaceConfig
    positions: tuple[str, ...]
    detector: MTCNN
    _full: dict[int, np.ndarray]  # full-resolution frames not yet returned: (H, W, 3) uint8 views
    _last_full: int  # last frame detected whole
    _last_search: int  # last frame detected whole at `search_size`
    _last_deep: int  # last frame detected whole at `deep_size`
    deep_frames: int  # frames detected whole at `deep_size` (every other one at `fine_size`)
    _last: dict[str, tuple[int, np.ndarray] | None]  # position -> (frame, box) of its last face, if any
    _refuted: dict[str, set[int]]  # per position: frames where refinement found no face of it

    def _detect(self, indices: list[int], small: Small) -> dict[int, FrameDetections]:
        raise NotImplementedError

    def _associate(
        self,
        fd: FrameDetections,
        last: dict[str, tuple[int, np.ndarray] | None],
        frame: int,
        faces: Sequence[Det] | None = None,
    ) -> dict[str, Det | None]:
        raise NotImplementedError

    def _refine_at(
        self, frame: int, expect: dict[str, np.ndarray], taken: Sequence[np.ndarray] = (), search: bool = True
    ) -> dict[str, Det | None]:
        raise NotImplementedError

    def _whole(
        self,
        s: int,
        expect: dict[str, np.ndarray | None],
        small: Small,
        known: dict[str, Det],
        refined: set[str],
    ) -> dict[str, Det | None]:
        """MTCNN on the whole frame `s` (with its contrast normalised where it is low, `lift_gain`), with
        the faces already `known` there (by position) and the faces it misses near their `expect`ed boxes
        added (found by refinement, for the positions not `refined` at s yet). Where a position is still
        without a face, the frame again at `search_size` (small faces; at most once every `lost_span`
        frames), and, where no face at all has been seen for `deep_every` frames, at `deep_size` (smaller
        faces; at most once every `deep_every` frames). A detection (of at least `min_score`) on a face
        carried by its appearance replaces it. "main" takes its face among all of them (it may
        move to a much stronger one); a left or right face already known keeps its position, and the other
        takes the face nearest where it is expected. A face taken at well under its position's last
        size is looked for again at that size (`_regrown`)."""
        cfg = self.cfg
        self._last_full = s
        # positions take faces near where they are expected (two subjects crossing keep their identity)
        last = {p: None if e is None else (s, e) for p, e in expect.items()}
        plain = small([s])[0]  # (h, w, 3) uint8
        faces = list(known.values())
        assign: dict[str, Det | None] = dict.fromkeys(self.positions)
        for view in ("work", "search", "deep"):
            missing = [p for p, d in assign.items() if d is None]
            if view == "deep" and faces:  # a missing face last seen next to a found one is hidden, not tiny
                missing = [p for p in missing if self._apart(p, faces)]
                if not missing:
                    break
            frame = self._view(view, s, plain, missing)
            if frame is None:
                continue
            fd = self._detect([s], _fixed(frame))[s]
            for b, m, c in zip(fd.boxes, fd.landmarks, fd.scores, strict=True):
                found = Det(b, m, float(c))
                clash = [i for i, d in enumerate(faces) if float(box_iou(b, d.box)) >= CLASH_IOU]
                if not clash:
                    faces.append(found)
                elif len(clash) == 1 and faces[clash[0]].carried and found.score >= cfg.min_score:
                    # a face carried by its appearance that the detector finds: the detector's box
                    carried, faces[clash[0]] = faces[clash[0]], found
                    known = {p: found if d is carried else d for p, d in known.items()}
            if view == "work":
                missed = {
                    p: e
                    for p, e in expect.items()
                    if e is not None
                    and p not in refined
                    and all(float(box_iou(e, d.box)) < cfg.track_iou for d in faces)
                }
                faces += [d for d in self._refine_at(s, missed, [d.box for d in faces]).values() if d]
            assign = self._assign(s, faces, known, last)
            if all(d is not None for d in assign.values()):
                break
        return self._regrown(s, assign)

    def _regrown(self, s: int, assign: dict[str, Det | None]) -> dict[str, Det | None]:
        """`assign` with each face the detector found at under `SHRUNK` of its position's last side (seen
        within `lost_span` frames) looked for again by refinement at that side about its centre: where
        part of a face is hidden, O-Net may take what shows (an eye and a cheek) for a small face, and a
        track that follows that box keeps it small. A face found there `GROWN` times its side or more, over
        its centre, replaces it (looked for at `NARROWER` of that side too where none is found at it); a face
        that did move away is not found larger and stays."""
        cfg = self.cfg
        looks: dict[str, np.ndarray] = {}  # position -> box looked at
        sides: dict[str, float] = {}  # position -> its last side
        for pos, det in assign.items():
            last = self._last[pos]
            if det is None or det.source != "detected" or last is None or s - last[0] > cfg.lost_span:
                continue
            side = float(last[1][3] - last[1][1])
            if det.side < SHRUNK * side:
                looks[pos], sides[pos] = about(centre_of(det.box), side), side
        if not looks:
            return assign
        taken = [d.box for p, d in assign.items() if d is not None and p not in looks]
        got = self._refine_at(s, looks, taken)
        # where O-Net settles on nothing in a square of the last box's height (wider than a face), a
        # second look at `NARROWER` of that side
        again = {p: about(centre_of(looks[p]), NARROWER * sides[p]) for p, f in got.items() if f is None}
        got.update(self._refine_at(s, again, taken) if again else {})
        out = dict(assign)
        for pos, found in got.items():
            self._refuted[pos].discard(s)  # the detector's face stays where refinement finds none
            det = assign[pos]
            assert det is not None
            centre = centre_of(det.box)
            if (
                found is not None
                and found.side >= GROWN * det.side
                and found.box[0] <= centre[0] <= found.box[2]
                and found.box[1] <= centre[1] <= found.box[3]
            ):
                out[pos] = found
        return out

    def _apart(self, position: str, faces: Sequence[Det]) -> bool:
        """Whether the last face of `position` was away from every face of `faces`: its box grown by a
        face side on every side overlaps none of theirs (a face behind another is next to it first)."""
        last = self._last[position]
        if last is None:
            return False
        box = np.asarray(last[1], np.float64)  # (4,) x1, y1, x2, y2
        side = float(box[3] - box[1])
        grown = box + np.array([-side, -side, side, side])
        return all(float(box_iou(grown, d.box)) == 0.0 for d in faces)

    def _view(self, view: str, s: int, plain: torch.Tensor, missing: Sequence[str]) -> torch.Tensor | None:
        """Frame s as MTCNN sees it in `view` (see `_whole`): "work" the detection frame `plain` (h, w, 3)
        uint8, contrast-normalised where it is low; "search" and "deep" the full frame at `search_size` and
        `deep_size` (at most its own size), at most once every `lost_span` frames and once every
        `deep_every` frames without a face, or every `search_every` frames where one of the `missing`
        positions lost a face too small for the search view; None where the view is not due or would be
        no larger than the one before."""
        cfg = self.cfg
        if view == "work":
            lifted = lift_contrast(plain, cfg)
            return plain if lifted is None else lifted
        full = self._full[s]  # (H, W, 3) uint8
        if view == "search":
            if cfg.search_size <= cfg.work_size or s - self._last_search < cfg.lost_span:
                return None
            self._last_search = s
            return downscale(full[None], cfg.search_size)[0]
        deep = min(cfg.deep_size, max(full.shape[:2]))
        if deep <= max(cfg.search_size, cfg.work_size):
            return None
        last_face = max((f for f, _ in filter(None, self._last.values())), default=-(10**9))
        # smallest face side (full-frame pixels) that the search view finds: a track of a smaller face,
        # lost by refinement, is found again only at `deep_size`
        searchable = cfg.min_face_size * max(full.shape[:2]) / cfg.search_size
        lost_small = any(
            (last := self._last[p]) is not None
            and s - last[0] <= cfg.lost_span
            and float(last[1][3] - last[1][1]) < searchable
            for p in missing
        )
        if s - max(self._last_deep, last_face) < cfg.deep_every and not (
            lost_small and s - self._last_deep >= cfg.search_every
        ):
            return None
        self._last_deep = s
        self.deep_frames += 1
        if self.deep_frames % 2 == 0:  # every other deep look finer (the one before may have missed a face)
            deep = max(deep, min(cfg.fine_size, max(full.shape[:2])))
        return downscale(full[None], deep)[0]

    def _assign(
        self,
        s: int,
        faces: list[Det],
        known: dict[str, Det],
        last: dict[str, tuple[int, np.ndarray] | None],
    ) -> dict[str, Det | None]:
        """Which face of frame s each position takes (see `_whole`)."""
        if "main" in self.positions or not known:
            # the faces themselves: one carried on by its appearance stays carried, with its count of frames
            return self._associate(_pack(faces), dict(last), s, faces)
        assign: dict[str, Det | None] = {pos: known.get(pos) for pos in self.positions}
        pool = [f for f in faces if all(float(box_iou(f.box, k.box)) < CLASH_IOU for k in known.values())]
        for pos in self.positions:
            if assign[pos] is not None or not pool:
                continue
            entry = last[pos]
            if entry is None:
                best = max(pool, key=lambda f: f.score * float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
            else:
                centre = centre_of(entry[1])
                best = min(pool, key=lambda f: float(np.hypot(*(centre_of(f.box) - centre))))
            assign[pos] = best
            pool.remove(best)
        return assign
