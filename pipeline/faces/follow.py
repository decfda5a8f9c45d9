"""Following faces by refinement (`FaceConfig.follow` "refine"): the part of `FaceTracker` that decides, per
sample, where whole frames are detected and where each subject's face is looked for near its last box.

At each sample s (every `every`-th frame) each position whose face was seen recently is looked for near
where it is expected (its last box moved on at its speed) by refinement (`pipeline.faces.refine`): at s
directly, or, for a face that moves more than `FAST` face widths per sample or was not found there, step
by step up to s (a step moves it about `STEP` face widths, at most a sample). A face not seen at the
previous sample (back after a gap, where it may have turned) is also looked for at its last box.
MTCNN runs on the whole (downscaled) frame at the first sample, at least every `detect_every` frames (new
faces, "main" moving to a stronger one) and, while a position is without a face, at most every
`search_every` frames (`pipeline.faces.whole`: the faces it misses but refinement finds are kept, and
each position takes the face near where it is expected, so two subjects passing each other keep their
identity).

Between two samples where a position's face is one face moving smoothly (`linked`, and no jump),
nothing is looked at: the records are interpolated ("tracked"). Where it is not (the face appears,
disappears or jumps), the face is refined frame by frame forwards from its last box and backwards from
the sample's face (backwards also into the `look_back` frames before, for a face that appears; at the
speed from its last box, or from where it is where it jumped there); only
frames that neither reaches while the face was there at both samples are detected whole. Every refined
box passed the track's O-Net threshold in its own frame; a frame where refinement looked for a
position's face and found none is "refuted" for it, and a gap holding one is not filled. A face found
(refined, or detected in a frame refinement lost) is not a position's where it is another position's
face in that frame: found there, or between that position's faces found before and after it.
"""

from __future__ import annotations

from bisect import insort
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.faces.detect import box_iou
from pipeline.faces.look import FrameLook
from pipeline.faces.records import Det, apart, jump, linked
from pipeline.faces.whole import CLASH_IOU, Small

Head = tuple[np.ndarray, np.ndarray | None, int]  # a walk's last box (4,), box change per frame, its frame
FAST = 1.0  # a face moving more than this many face widths per sample is followed step by step
STEP = 0.5  # ... in steps of the frames that move it about this many face widths
STAYED_IOU = 0.5  # a face not seen at the last sample is also looked for at its last box if that is apart


@dataclass
class Step:
    """One sample's processing: the faces found between the samples p and s, and at s."""

    p: int | None  # the previous sample
    s: int  # this sample
    before: dict[str, Det | None]  # each position's face at p
    after: dict[str, Det | None]  # each position's face at s (so far)
    results: dict[int, dict[str, Det]] = field(default_factory=lambda: defaultdict(dict))  # frames < s
    looked: set[int] = field(default_factory=set)  # frames refinement or detection looked at


class Follower(FrameLook):
    """Refinement-mode processing of `FaceTracker` (a mixin: the tracker owns the state declared here)."""

    _frontier: int
    _emitted: int
    _tried: set[int]
    _dets: dict[str, dict[int, Det]]
    _det_frames: dict[str, list[int]]
    _last: dict[str, tuple[int, np.ndarray] | None]
    _last_sample: int | None
    _last_assign: dict[str, Det | None]
    _trail: dict[str, list[tuple[int, np.ndarray]]]  # per position: recent (frame, box) of its face

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
        """Where the position's face is expected in `frame`: its last box moved on at its speed; after
        `max_gap + every` frames without it, its last box (a face that comes back where it left); None
        after `lost_span` frames."""
        if not self._trail[pos]:
            return None
        last, box = self._trail[pos][-1]
        if frame - last > self.cfg.lost_span:
            return None
        speed = self._speed(pos)
        if speed is None or frame - last > self.cfg.max_gap + self.cfg.every:
            return box
        return box + speed * (frame - last)

    def _pace(self, pos: str) -> float:
        """Face widths the position's face moves per frame (0 where its speed is unknown)."""
        speed = self._speed(pos)
        if speed is None:
            return 0.0
        box = self._trail[pos][-1][1]
        centre = (speed[:2] + speed[2:]) / 2
        return float(np.hypot(*centre)) / max(float(box[2] - box[0]), 1.0)

    def _heads(self, positions: Sequence[str]) -> dict[str, Head]:
        """Walk heads at each position's last face, moving on at its speed."""
        heads: dict[str, Head] = {}
        for pos in positions:
            if self._trail[pos]:
                frame, box = self._trail[pos][-1]
                heads[pos] = (box, self._speed(pos), frame)
        return heads

    def _linked(self, a: Det | None, b: Det | None, steps: int, pos: str) -> bool:
        """`linked` without jumps (a face moving fast between disjoint boxes is followed, not guessed)."""
        if a is not None and b is not None and jump(a, b):
            return False
        return linked(a, b, self.cfg, self._speed(pos), steps)

    # ---- refinement -----------------------------------------------------------------------------

    def _det_at(self, step: Step, pos: str, f: int) -> Det | None:
        """The position's face in frame f as known so far: found in this step, at its samples, or before."""
        found = step.results[f].get(pos) if f in step.results else None
        if found is None and f == step.s:
            found = step.after.get(pos)
        if found is None and f == step.p:
            found = step.before.get(pos)
        return found if found is not None else self._dets[pos].get(f)

    def _taken(self, step: Step, f: int, pos: str) -> list[np.ndarray]:
        """Boxes of the other positions in frame f: found there (this step, or earlier), else between their
        nearest faces found before and after f (at most `max_gap + every` frames apart)."""
        boxes = []
        for q in self.positions:
            if q == pos:
                continue
            known = {g: d.box for g, d in self._dets[q].items()}
            known.update({g: r[q].box for g, r in step.results.items() if q in r})
            a, b = step.before[q], step.after[q]
            if step.p is not None and a is not None:
                known[step.p] = a.box
            if b is not None:
                known[step.s] = b.box
            if f in known:
                boxes.append(known[f])
                continue
            f0 = max((g for g in known if g < f), default=None)
            f1 = min((g for g in known if g > f), default=None)
            if f0 is not None and f1 is not None and f1 - f0 <= self.cfg.max_gap + self.cfg.every:
                boxes.append(known[f0] + (known[f1] - known[f0]) * (f - f0) / (f1 - f0))
        return boxes

    def _walk(self, step: Step, frames: Sequence[int], heads: dict[str, Head]) -> None:
        """Refine each head's face at `frames` in turn (either direction) into step.results; a head stops
        where refinement fails or where its face is already known (the other walk met it)."""
        for f in frames:
            heads = {
                pos: h
                for pos, h in heads.items()
                if pos not in step.results[f]
                and f not in self._dets[pos]
                and (step.p is None or f > step.p or step.before[pos] is None)
                and abs(f - h[2]) <= self.cfg.max_gap + self.cfg.every
            }
            if not heads:
                return
            expect = {pos: box if v is None else box + v * (f - at) for pos, (box, v, at) in heads.items()}
            taken = {pos: self._taken(step, f, pos) for pos in heads}  # each head's own: not its face
            prior = {
                pos: (h[2], d) for pos, h in heads.items() if (d := self._det_at(step, pos, h[2])) is not None
            }
            # faces carried into the frame before are expected where their appearance is: no R-Net search,
            # and O-Net looks again (has the face turned back?) only at samples
            search = len(prior) < len(heads) or any(d.carried == 0 for _, d in prior.values())
            step.looked.add(f)
            look = search or f % self.cfg.every == 0
            for pos, det in self._refine_at(f, expect, taken, search, prior, look).items():
                if det is None:
                    del heads[pos]
                    continue
                step.results[f][pos] = det
                box, v, at = heads[pos]
                change = (det.box - box) / (f - at)
                heads[pos] = (det.box, change if v is None else (v + change) / 2, f)

    # ---- one sample -----------------------------------------------------------------------------

    def _follow(self, samples: list[int], small: Small) -> None:
        """Process the samples in order (refinement mode): each sample and the frames before it."""
        for s in samples:
            self._follow_sample(s, small)
        if samples:
            self._frontier = samples[-1] + 1

    def _follow_sample(self, s: int, small: Small) -> None:
        cfg = self.cfg
        p = self._last_sample
        step = Step(p, s, dict(self._last_assign), dict.fromkeys(self.positions))
        expect = {pos: self._expected(pos, s) for pos in self.positions}
        walked: set[str] = set()
        live = [pos for pos in self.positions if expect[pos] is not None] if p is not None else []
        if p is not None and live:
            # each face at s: refined where it is expected, or followed there step by step where it
            # moves too fast for that or was not found there
            fast = [
                pos for pos in live if self._pace(pos) * cfg.every > FAST and step.before[pos] is not None
            ]
            jumped = {pos: expect[pos] for pos in live if pos not in fast}
            step.looked.add(s)
            # a face seen at p is not searched for around its expected box: if it is not there, it is
            # followed step by step from p instead
            seen = {pos: e for pos, e in jumped.items() if step.before[pos] is not None}
            step.after.update(self._refine_at(s, seen, search=False))  # type: ignore[arg-type]
            others = {pos: e for pos, e in jumped.items() if pos not in seen}
            taken = [d.box for d in step.after.values() if d is not None]
            step.after.update(self._refine_at(s, others, taken))  # type: ignore[arg-type]
            # a face back after a gap may have turned: also looked for where it was last seen
            stayed = {pos: self._trail[pos][-1][1] for pos in others if step.after[pos] is None}
            stayed = {
                pos: b
                for pos, b in stayed.items()
                if float(box_iou(b, others[pos])) < STAYED_IOU  # type: ignore[arg-type]
            }
            if stayed:
                taken = [d.box for d in step.after.values() if d is not None]
                first = self._refine_at(s, stayed, taken)
                step.after.update(first)
                # found away from where it was looked for: refined once more from there (a tighter box)
                again = self._refine_at(s, {pos: d.box for pos, d in first.items() if d is not None}, taken)
                step.after.update({pos: d for pos, d in again.items() if d is not None})
                for pos in again:
                    self._refuted[pos].discard(s)  # found by the first look
            lost = [pos for pos in live if step.after[pos] is None and step.before[pos] is not None]
            pace = max([self._pace(pos) for pos in lost] + [1e-6])
            stride = int(min(max(STEP / pace, 1), s - p))
            self._walk(step, range(s, p, -stride)[::-1], self._heads(lost))
            for pos in lost:  # where a long step lost the face: frame by frame from its last one
                if stride > 1 and pos not in step.results[s]:
                    f0 = max([f for f in range(p + 1, s) if pos in step.results[f]], default=None)
                    heads = self._heads([pos])
                    if f0 is not None and pos in heads:
                        heads = {pos: (step.results[f0][pos].box, heads[pos][1], f0)}
                    self._walk(step, range(p + 1 if f0 is None else f0 + 1, s + 1), heads)
            for pos in lost:
                step.after[pos] = step.results[s].pop(pos, None)
                # a face found at s in one step from p is not followed through the frames between
                walked |= {pos} if step.after[pos] is not None and stride < s - p else set()
        since = s - self._last_full  # whole frames: periodically, and at most every `search_every` frames
        missing = any(d is None for d in step.after.values())  # while a position has no face
        if p is None or since >= cfg.detect_every or (missing and since >= cfg.search_every):
            known = {pos: d for pos, d in step.after.items() if d is not None}
            step.after = self._whole(s, expect, small, known, set(live))
        if p is not None and s - p > 1:
            todo = [
                pos
                for pos in self.positions
                if pos not in walked and not self._linked(step.before[pos], step.after[pos], s - p, pos)
            ]
            if todo:
                self._between(step, todo, small)
        self._tried.update(step.looked)
        self._tried.add(s)
        for f in sorted(k for k in step.results if k < s):
            for pos, det in sorted(step.results[f].items()):
                self._put(pos, f, det)
        for pos, got in step.after.items():
            if got is not None:
                self._put(pos, s, got)
        self._last_sample, self._last_assign = s, step.after

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

    def _between(self, step: Step, todo: list[str], small: Small) -> None:
        """Faces of the positions `todo` in the frames between samples p and s (not linked): refined
        forwards from each face's last box and backwards from its face at s (and on back over the
        `look_back` frames not yet returned, where the face was not there at p); detected whole where
        neither reaches while the face was there at both samples."""
        p, s = step.p, step.s
        assert p is not None
        self._walk(step, range(p + 1, s), self._heads(todo))
        backward: dict[str, Head] = {}
        for pos in todo:
            det = step.after[pos]
            if det is not None:  # moving back at the speed from the face's last box to this one, unless
                # it jumped there (a cut, a face across the frame): then from where it is
                prior = self._trail[pos][-1] if self._trail[pos] else None
                speed = None
                if prior is not None and not apart(prior[1], det.box):
                    speed = (det.box - prior[1]) / (s - prior[0])
                backward[pos] = (det.box, speed, s)
        self._walk(
            step, range(s - 1, max(min(p + 1, s - self.cfg.look_back), self._emitted) - 1, -1), backward
        )
        both = [pos for pos in todo if step.before[pos] is not None and step.after[pos] is not None]
        unresolved = [f for f in range(p + 1, s) if any(pos not in step.results[f] for pos in both)]
        if not unresolved:
            return
        dets = self._detect(unresolved, small)  # refinement lost a face that was there at both samples
        last = dict(self._last)
        for f in unresolved:
            assign = self._associate(dets[f], last, f)
            for pos in both:
                det = assign[pos]
                if pos in step.results[f] or det is None:
                    continue
                if any(float(box_iou(det.box, t)) >= CLASH_IOU for t in self._taken(step, f, pos)):
                    continue  # another position's face there (found by refinement): not this one's
                step.results[f][pos] = det
        step.looked.update(unresolved)
