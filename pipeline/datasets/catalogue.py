"""The typed catalogue of an input folder: videos, subjects, splits and per-frame labels per task.

Every data set adapter (Aff-Wild2, HUME-Vidmimic2, BAH, plain folder) returns a `Catalogue`; every later
stage (extraction, training, prediction, submission) reads only this, never the folder layout.

Bad input is collected, not raised on the spot: each adapter records a `CatalogueProblem` (file, line,
reason) for every bad file and leaves that file's subject out of the task's splits. `load_catalogue` then
either raises one `CatalogueError` listing every problem (strict, the default) or returns the catalogue
with the problems in `Catalogue.errors`, so that a run can go on with the good videos and report the rest
(`Catalogue.failures()` gives them as rows of a failures table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from model.tasks import SPLIT_PARTS, SPLITS, TASKS, get_task
from pipeline.video import probe
from pipeline.video.probe import VideoInfo

Layout = Literal["affwild2", "emi", "ah", "plain"]
Position = Literal["main", "left", "right"]
LAYOUTS: tuple[str, ...] = ("affwild2", "emi", "ah", "plain")


@dataclass(frozen=True)
class CatalogueProblem:
    """One bad input found while building a catalogue."""

    path: Path  # the file at fault
    reason: str  # what is wrong, in words
    line: int | None = None  # 1-based line number in `path`, where one applies
    task: str | None = None  # task whose labels the file holds, if any
    subject: str | None = None  # subject the file describes, if known
    video: str | None = None  # `Video.name` of that subject, if known

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.reason}"


class CatalogueError(ValueError):
    """Bad input found while building a catalogue; the message names the file (and line) and the reason.

    `errors` holds every problem found, one per bad file (an empty list for a folder-level error).
    """

    def __init__(self, message: str, errors: Sequence[CatalogueProblem] = ()) -> None:
        super().__init__(message)
        self.errors: list[CatalogueProblem] = list(errors)

    @classmethod
    def from_problems(cls, root: Path, errors: Sequence[CatalogueProblem]) -> CatalogueError:
        """One error listing every problem, one per line."""
        head = f"{len(errors)} bad input file(s) in {root}:" if len(errors) > 1 else "bad input:"
        return cls("\n  ".join([head, *map(str, errors)]), errors)


@dataclass(frozen=True)
class Video:
    """One video file."""

    name: str  # file stem, e.g. "3-25-854x480"; unique within a catalogue
    path: Path  # the file on disk


@dataclass(frozen=True)
class Subject:
    """One annotated person in one video: the unit of caching, training and submission lines."""

    name: str  # annotation name incl. `_left` / `_right`, e.g. "10-60-1280x720_left"; else the video name
    video: str  # `Video.name` of the file that shows this subject
    position: Position  # which face to follow: the main one, or the left / right of two


@dataclass(frozen=True)
class Labels:
    """Labels of one task for one subject, invalid markers already masked."""

    task: str  # task name (model.tasks.TASKS key)
    subject: str  # `Subject.name`
    # (N, K) float32: row i is frame `first_frame + i` = decoded frame index i; clip tasks: (1, K).
    # Rows whose `valid` is False hold 0.0 (the invalid marker is not kept).
    values: np.ndarray
    valid: np.ndarray  # (N,) bool: False where the annotation holds the invalid marker
    source: Path  # the file the labels came from
    first_frame: int = 1  # number of the first frame: 1 for Aff-Wild2, 0 for BAH

    @property
    def num_frames(self) -> int:
        """Number of annotated rows (annotation lines)."""
        return int(self.values.shape[0])

    @property
    def num_valid(self) -> int:
        """Number of rows with a valid label."""
        return int(self.valid.sum())


@dataclass
class Catalogue:
    """What an input folder holds. Built by `pipeline.datasets.load_catalogue`."""

    root: Path  # the input folder
    layout: Layout  # which adapter read it
    videos: dict[str, Video] = field(default_factory=dict)  # by `Video.name`
    subjects: dict[str, Subject] = field(default_factory=dict)  # by `Subject.name`
    labels: dict[tuple[str, str], Labels] = field(default_factory=dict)  # by (task, subject name)
    # task -> split -> subject names; the test split keeps the release list's order
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    example_submissions: dict[str, Path] = field(default_factory=dict)  # task -> organiser example file
    found: list[str] = field(default_factory=list)  # human-readable notes of what was found where
    cropped_aligned: Path | None = None  # organiser face-crop folder, if present (noted, not used)
    errors: list[CatalogueProblem] = field(default_factory=list)  # bad inputs left out (strict=False)
    # container probes, filled lazily by `video_info`
    _info: dict[str, VideoInfo] = field(default_factory=dict, init=False, repr=False, compare=False)

    def tasks(self) -> list[str]:
        """Tasks this catalogue has splits for, in task-table order."""
        return [t for t in TASKS if t in self.splits]

    def subjects_in(self, task: str, split: str) -> list[Subject]:
        """The subjects of `split` for `task`, in split order.

        "all" is every subject that has labels for the task or is in its test list (train, then
        validation, then test order); for a plain folder, "all" is every subject and the other splits
        are empty. Unknown task or split names raise ValueError.
        """
        get_task(task)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
        if self.layout == "plain":
            return list(self.subjects.values()) if split == "all" else []
        splits = self.splits.get(task, {})
        if split != "all":
            return [self.subjects[name] for name in splits.get(split, [])]
        names = [n for part in SPLIT_PARTS for n in splits.get(part, [])]
        names += sorted(s for (t, s) in self.labels if t == task)
        return [self.subjects[n] for n in dict.fromkeys(names)]

    def video_of(self, subject: str) -> Video:
        """The video file that shows `subject`."""
        return self.videos[self.subjects[subject].video]

    def video_info(self, video: str) -> VideoInfo:
        """Container metadata of video `video` (probed once, then cached); raises `VideoError`."""
        if video not in self._info:
            self._info[video] = probe.probe_video(self.videos[video].path)
        return self._info[video]

    def failures(self) -> list[dict[str, str]]:
        """The problems as rows of a failures table: video, subject, stage ("catalogue"), reason."""
        return [
            {"video": p.video or "", "subject": p.subject or "", "stage": "catalogue", "reason": str(p)}
            for p in self.errors
        ]
