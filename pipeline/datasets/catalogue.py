"""The typed catalogue of an input folder: videos, subjects, splits and per-frame labels per task.

Every data set adapter (Aff-Wild2, HUME-Vidmimic2, BAH, plain folder) returns a `Catalogue`; every later
stage (extraction, training, prediction, submission) reads only this, never the folder layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Layout = Literal["affwild2", "emi", "ah", "plain"]
Position = Literal["main", "left", "right"]


class CatalogueError(ValueError):
    """Bad input found while building a catalogue; the message names the file (and line) and the reason."""


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
    values: np.ndarray  # (N, K) float32: row i is frame `first_frame + i`; clip tasks: (1, K)
    valid: np.ndarray  # (N,) bool: False where the annotation holds the invalid marker
    source: Path  # the file the labels came from
    first_frame: int = 1  # number of the first frame: 1 for Aff-Wild2, 0 for BAH


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
