"""Scores of face records against the synthetic truth: found faces, IoU, boxes where there is no face, and
identity switches between the subjects of one video.

Per subject of a video, frame by frame (records and truth matched by decode index):

- found: the frame shows the subject's face and the subject's own record has a box with IoU >= `FOUND_IOU`
  with the subject's own true box (a box on another face, or a loose one, is not a found face);
- IoU: of each frame that shows the face and has a box, with the subject's true box; the median is reported;
- wrong boxes: frames without the subject's face where its record has a box;
- identity switches (videos with several subjects): in each frame where a record's box overlaps some true
  face by IoU >= `MATCH_IOU`, the record is assigned to the subject whose true box it overlaps most. A switch
  is a change of that assignment from one assigned frame to the next; a record whose first assignment is
  another subject starts with one. Each record counts its own, so two faces trading places count 2 (as the
  MOT benchmarks count identity switches per true track).

`FaceScore` holds the counts of a subject, a video or a pooled set; pooled figures are over all frames of
the set (the median IoU too), not means of per-video figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from pipeline.faces.detect import box_iou

FOUND_IOU = 0.5  # a face is found where its subject's box has at least this IoU with the true box
MATCH_IOU = 0.3  # a box is assigned to a subject (identity switches) from this IoU with its true box on


@dataclass
class FaceScore:
    """Counts of face records scored against the truth (a subject, a video or a pooled set)."""

    frames: int = 0  # frames x subjects scored
    face_frames: int = 0  # of those, showing the subject's face
    found: int = 0  # face frames with the subject's box at IoU >= FOUND_IOU
    no_face_frames: int = 0  # frames without the subject's face
    wrong_boxes: int = 0  # no-face frames given a box
    switches: int = 0  # identity switches (see the module docstring)
    ious: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) IoU of each face frame with a box

    def __add__(self, other: FaceScore) -> FaceScore:
        return FaceScore(
            self.frames + other.frames,
            self.face_frames + other.face_frames,
            self.found + other.found,
            self.no_face_frames + other.no_face_frames,
            self.wrong_boxes + other.wrong_boxes,
            self.switches + other.switches,
            np.concatenate([self.ious, other.ious]),
        )

    @property
    def found_pct(self) -> float:
        """Found share of the face frames, %; NaN without face frames."""
        return 100.0 * self.found / self.face_frames if self.face_frames else float("nan")

    @property
    def median_iou(self) -> float:
        """Median IoU of the face frames with a box; 0 where none has one (NaN without face frames)."""
        if self.ious.size:
            return float(np.median(self.ious))
        return 0.0 if self.face_frames else float("nan")

    def figures(self) -> dict[str, float]:
        """The scores as JSON numbers (NaN ones are dropped later by the bench)."""
        return {
            "frames": float(self.frames),
            "face_frames": float(self.face_frames),
            "found_pct": self.found_pct,
            "median_iou": self.median_iou,
            "no_face_frames": float(self.no_face_frames),
            "wrong_boxes": float(self.wrong_boxes),
            "switches": float(self.switches),
        }


def pooled(scores: Iterable[FaceScore]) -> FaceScore:
    """The sum of several scores (every frame of every one counts once)."""
    total = FaceScore()
    for score in scores:
        total = total + score
    return total


def subject_score(
    true_face: np.ndarray,  # (n,) bool: the frame shows the subject's face
    true_box: np.ndarray,  # (n, 4) true box (anything where there is no face)
    face: np.ndarray,  # (n,) bool: the subject's record has a box
    box: np.ndarray,  # (n, 4) the record's box
) -> FaceScore:
    """Found, IoU and wrong boxes of one subject's records in the same n frames as its truth."""
    true_face, face = np.asarray(true_face, bool), np.asarray(face, bool)
    both = true_face & face
    ious = box_iou(np.asarray(box, np.float64)[both], np.asarray(true_box, np.float64)[both])  # (k,)
    return FaceScore(
        frames=len(true_face),
        face_frames=int(true_face.sum()),
        found=int((ious >= FOUND_IOU).sum()),
        no_face_frames=int((~true_face).sum()),
        wrong_boxes=int((face & ~true_face).sum()),
        ious=ious,
    )


def assignments(
    face: np.ndarray,  # (n,) bool: the record has a box
    box: np.ndarray,  # (n, 4)
    truths: list[tuple[np.ndarray, np.ndarray]],  # per subject: (n,) face, (n, 4) true box
) -> np.ndarray:
    """(n,) the subject (index into `truths`) each frame's box overlaps most with IoU >= MATCH_IOU; -1 where
    there is no box or no such subject."""
    n = len(face)
    overlap = np.zeros((len(truths), n))
    for k, (true_face, true_box) in enumerate(truths):
        shown = np.asarray(face, bool) & np.asarray(true_face, bool)
        overlap[k, shown] = box_iou(
            np.asarray(box, np.float64)[shown], np.asarray(true_box, np.float64)[shown]
        )
    best = overlap.argmax(axis=0) if len(truths) else np.zeros(n, int)
    return np.where(overlap.max(axis=0, initial=0.0) >= MATCH_IOU, best, -1)


def count_switches(assigned: np.ndarray, own: int) -> int:
    """Changes of assignment over the assigned frames (-1: unassigned), starting from `own`."""
    seen = np.asarray(assigned)[np.asarray(assigned) >= 0]
    return int((np.diff(np.r_[own, seen]) != 0).sum())


def video_score(
    truth: Mapping[str, tuple[np.ndarray, np.ndarray]],  # subject -> (n,) face, (n, 4) box, by decode index
    records: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],  # subject -> index, face, box
) -> dict[str, FaceScore]:
    """Each subject's score in one video, identity switches included where it has several subjects.

    Records index into the truth arrays by decode index; a subject without records scores as all missed.
    """
    subjects = list(truth)
    truths = [truth[s] for s in subjects]
    out = {}
    for k, subject in enumerate(subjects):
        true_face, true_box = truth[subject]
        if subject in records:
            index, face, box = records[subject]
            index = np.asarray(index, np.int64)
        else:
            n = len(true_face)
            index, face, box = np.arange(n), np.zeros(n, bool), np.zeros((n, 4))
        score = subject_score(np.asarray(true_face)[index], np.asarray(true_box)[index], face, box)
        if len(subjects) > 1:
            at = [(np.asarray(f)[index], np.asarray(b)[index]) for f, b in truths]
            score.switches = count_switches(assignments(face, box, at), own=k)
        out[subject] = score
    return out
