"""A readable summary of a catalogue: counts per task and split, what was found where, and problems.

Frames are annotation lines (rows of the labels), labelled frames the valid ones. With `probe`, the
container frame count of every video in a split is read (metadata only, cached on the catalogue) and
compared with the annotation lines; decoded counts, which can differ again, are left to the stages that
decode.
"""

from __future__ import annotations

from collections import Counter

from model.tasks import SPLITS, TASKS
from pipeline.datasets.catalogue import Catalogue, Subject
from pipeline.video.probe import VideoError


def _container_frames(cat: Catalogue, task: str, subjects: list[Subject]) -> tuple[int, int, int]:
    """(sum of container frame counts, unreadable videos, labelled subjects whose line count differs)."""
    total = unreadable = mismatched = 0
    per_frame = task in TASKS and TASKS[task].unit == "frame"
    for subject in subjects:
        try:
            frames = cat.video_info(subject.video).frame_count
        except VideoError:
            unreadable += 1
            continue
        total += frames
        labels = cat.labels.get((task, subject.name))
        if per_frame and labels is not None and labels.num_frames != frames:
            mismatched += 1
    return total, unreadable, mismatched


def _rows(cat: Catalogue, probe: bool) -> list[list[str]]:
    rows = []
    groups = [(t, s) for t in cat.tasks() for s in SPLITS if s == "all" or s in cat.splits[t]]
    if cat.layout == "plain":
        groups = [("-", "all")]
    for task, split in groups:
        subjects = list(cat.subjects.values()) if task == "-" else cat.subjects_in(task, split)
        labels = [cat.labels[task, s.name] for s in subjects if (task, s.name) in cat.labels]
        frames = f"{sum(lab.num_frames for lab in labels):,}" if labels else "-"
        valid = f"{sum(lab.num_valid for lab in labels):,}" if labels else "-"
        row = [task, split, f"{len(subjects):,}", f"{len({s.video for s in subjects}):,}", frames, valid]
        if probe:
            total, unreadable, mismatched = _container_frames(cat, task, subjects)
            row += [f"{total:,}", f"{unreadable:,}", f"{mismatched:,}"]
        rows.append(row)
    return rows


def format_summary(cat: Catalogue, probe: bool = False) -> str:
    """The summary text of `cat` (see the module docstring)."""
    positions = Counter(s.position for s in cat.subjects.values())
    kinds = ", ".join(f"{n:,} {p}" for p, n in sorted(positions.items()))
    lines = [
        f"catalogue of {cat.root} (layout {cat.layout})",
        f"videos: {len(cat.videos):,}   subjects: {len(cat.subjects):,} ({kinds or 'none'})",
        "",
    ]
    header = ["task", "split", "subjects", "videos", "frames", "labelled"]
    if probe:
        header += ["container frames", "unreadable", "line-count mismatches"]
    table = [header, *_rows(cat, probe)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines += ["", "found:", *(f"  - {note}" for note in cat.found)]
    if cat.errors:
        lines += ["", f"problems ({len(cat.errors)}; left out):", *(f"  - {p}" for p in cat.errors)]
    return "\n".join(lines)
