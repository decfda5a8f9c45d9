"""Looking for each subject's face in one frame near where it is expected (`FaceConfig.follow` "refine"): the
part of `FaceTracker` that `pipeline.faces.follow` asks, frame by frame, for the faces of some positions.

Each position's face is refined near its expected box (`pipeline.faces.refine`: MTCNN's R-Net and O-Net on
a crop of the full-resolution frame, zeros outside it); a refined box is the whole face's as O-Net regresses
it, also where part of the face is past the frame's edge, so that the face is expected next where it
is and not where its visible part is (a box cut to the frame shrank and slid off the face frame by frame,
and a track lost it); a face O-Net barely accepts (under a new face's threshold) whose box is larger
than expected grows only halfway (`_steady`); where O-Net finds none and the position's face is known in
the adjacent frame, that face may be carried on by its appearance (`pipeline.faces.carry`). Then the rules
that keep one face from being two positions': a face on a box another position holds in the frame is not
this one's, a weak face a quarter or more behind another one is dropped (what shows of it may be too
little), and of two positions that would take one face, the one whose expected box it overlaps less loses
it, both where that is not clear (faces crossing). A position left without a face "refutes" the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.faces.carry import LEAVING, SIZE_DRIFT, carry_faces, past_edge
from pipeline.faces.detect import box_iou
from pipeline.faces.records import Det, about, centre_of
from pipeline.faces.refine import refine_faces
from pipeline.faces.whole import CLASH_IOU, WholeFrames

AMBIGUOUS = 0.15  # a face two positions' expected boxes overlap about as much goes to neither
BEHIND = 0.25  # a refined face this much covered by another position's box needs a new face's O-Net score


class FrameLook(WholeFrames):
    """One frame's look for the faces of some positions (a mixin: the tracker owns the state declared here)."""

    frame_size: tuple[int, int] | None
    refined_boxes: int  # boxes refinement looked at (for throughput reports)
    _refuted: dict[str, set[int]]  # per position: frames where refinement found no face of it

    def _refine_at(
        self,
        frame: int,
        expect: dict[str, np.ndarray],
        taken: Sequence[np.ndarray] | dict[str, list[np.ndarray]] = (),
        search: bool = True,
        prior: dict[str, tuple[int, Det]] | None = None,
        look: bool = True,
    ) -> dict[str, Det | None]:
        """The face of each position near its expected box in `frame`; None where refinement finds none,
        or where the face found is another position's (`taken` boxes, for all or per position, or a
        clash between two of these:
        the position whose expected box it overlaps less loses it, and both where that is not clear, as
        where two faces cross). Where refinement finds none and `prior` holds the position's face in the
        adjacent frame (frame index, face), that face may be carried on by its appearance
        (`pipeline.faces.carry`: "tracked", at most `carry_frames` from a face O-Net accepted); with `look`
        False only that is tried, not refinement. A None refutes the frame."""
        names = list(expect)
        if not names:
            return {}
        boxes = np.stack([expect[n] for n in names])  # (k, 4)
        found = (
            refine_faces([self._full[frame]] * len(names), boxes, self.detector, self.cfg, search)
            if look
            else [None] * len(names)
        )
        self.refined_boxes += len(names)
        out: dict[str, Det | None] = {}
        for name, f in zip(names, found, strict=True):
            if f is None:
                out[name] = None
                continue
            box = f.box if f.score >= self.cfg.thresholds[2] else _steady(f.box, expect[name])
            out[name] = Det(box.copy(), f.landmarks, f.score, "refined")
        lost = {n: p for n, p in (prior or {}).items() if n in out and out[n] is None}
        out.update(self._carry(frame, expect, lost))
        for i, a in enumerate(names):
            det_a = out[a]
            if det_a is None:
                continue
            others = taken.get(a, []) if isinstance(taken, dict) else taken
            if any(float(box_iou(det_a.box, t)) >= CLASH_IOU for t in others):
                out[a] = None
                continue
            if det_a.score < self.cfg.thresholds[2] and any(_covered(det_a.box, t) >= BEHIND for t in others):
                out[a] = None  # a weak face partly behind another one: what shows of it may be too little
                continue
            for b in names[i + 1 :]:
                det_b = out[b]
                if det_b is None or float(box_iou(det_a.box, det_b.box)) < CLASH_IOU:
                    continue
                near_a, near_b = float(box_iou(det_a.box, expect[a])), float(box_iou(det_b.box, expect[b]))
                if abs(near_a - near_b) < AMBIGUOUS:  # both expected there (faces crossing): neither
                    out[a] = out[b] = None
                    break
                if near_a > near_b:
                    out[b] = None
                else:
                    out[a] = None
                    break
        for name, det in out.items():
            if det is None:
                self._refuted[name].add(frame)
        return out

    def _carry(
        self, frame: int, expect: dict[str, np.ndarray], prior: dict[str, tuple[int, Det]]
    ) -> dict[str, Det]:
        """Faces of the adjacent frame (`prior`: frame index, face) carried on into `frame` by appearance."""
        prior = {
            n: (f, d)
            for n, (f, d) in prior.items()
            if abs(f - frame) == 1 and d.carried < self.cfg.carry_frames and f in self._full
        }
        if not prior:
            return {}
        names = list(prior)
        before = [(self._full[prior[n][0]], prior[n][1].box, prior[n][1].landmarks) for n in names]
        found = carry_faces(
            [self._full[frame]] * len(names), np.stack([expect[n] for n in names]), before, self.cfg
        )
        size = self._full[frame].shape[:2]
        out = {}
        for n, c in zip(names, found, strict=True):
            last = prior[n][1]
            # a box that shrank or grew away from the face a detector accepted follows something else
            # (what shows of a face leaving the frame, then the frame's edge), and one that moved out
            # across the edge follows what is left of a face leaving it: no face
            if (
                c is not None
                and 1 / SIZE_DRIFT <= float(c.box[3] - c.box[1]) / last.side <= SIZE_DRIFT
                and past_edge(c.box, size) - past_edge(last.box, size) <= LEAVING
            ):
                out[n] = Det(c.box, c.landmarks, 0.0, "tracked", last.carried + 1, last.side)
        return out


def _steady(box: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """A weak face's box (4,) that is larger than its expected box (4,) grown only halfway (the geometric
    mean of the two sizes, about its own centre): a face's size changes little from one frame to the
    next, and O-Net's box regression on a face it barely accepts (turned away, partly hidden) grows the box
    off the face, onto hair and neck, frame after frame where each box is the next one's expectation."""
    size, wanted = box[2:] - box[:2], expected[2:] - expected[:2]  # (2,) width, height
    return box if size[1] <= wanted[1] else about(centre_of(box), np.sqrt(size * wanted))


def _covered(box: np.ndarray, other: np.ndarray) -> float:
    """Share of `box`'s area (4,) inside `other` (4,)."""
    w = max(0.0, float(min(box[2], other[2]) - max(box[0], other[0])))
    h = max(0.0, float(min(box[3], other[3]) - max(box[1], other[1])))
    return w * h / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
