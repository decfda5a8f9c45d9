"""The ABAW submission writer: one file per task from a predictions table, atomically.

Aff-Wild2 tracks (va, au, expr): a header, then one line per frame of every test subject in the release-list
order, frames from 00001; where the organiser example file is present its lines and their order are followed
exactly. AH: no header, one line per frame, frames from 0. EMI: one row per clip, intensities clipped to
[0, 1]. The format itself (columns, headers, image locations, values) is `pipeline.submission.format`; the
checker is `pipeline.submission.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from model.tasks import get_task
from pipeline.datasets.catalogue import Catalogue
from pipeline.io import write_text
from pipeline.submission.format import (
    expected_header,
    format_value,
    frame_ranges,
    image_location,
    location_prefix,
    parse_location,
    prediction_columns,
    read_example,
)


class SubmissionError(ValueError):
    """A submission cannot be written; `problems` lists every reason (subjects, frames, values)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        super().__init__("\n  ".join([message, *self.problems]))


# ------------------------------------------------------------------------------------------------ writer


@dataclass
class SubmissionReport:
    """What `write_submission` wrote."""

    task: str  # task name
    path: Path  # the file written
    lines: int  # data lines written (header not counted)
    subjects: int  # subjects (clips for EMI) written
    example: Path | None = None  # organiser example file whose lines were followed, if any
    # frames the example lists that predictions lack, written with the nearest predicted frame's values
    held: dict[str, list[int]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # predicted frames the example does not list

    def notes(self) -> list[str]:
        out = [f"wrote {self.lines} lines for {self.subjects} subjects of task {self.task} to {self.path}"]
        if self.example is not None:
            out.append(f"followed the lines of the organiser example {self.example}")
        for subject, frames in self.held.items():
            out.append(f"{subject}: {len(frames)} frames listed by the example but not predicted "
                       f"({frame_ranges(frames)}), written with the nearest predicted frame")  # fmt: skip
        for subject, count in self.dropped.items():
            out.append(f"{subject}: {count} predicted frames not listed by the example, left out")
        return out


def write_submission(
    task: str,
    predictions: pl.DataFrame,
    catalogue: Catalogue,
    path: Path,
    *,
    split: str = "test",
    strict: bool = False,
    decimals: int = 4,
) -> SubmissionReport:
    """Write the submission file of `task` for the subjects of `split` from a predictions table.

    `predictions` has `subject`, `frame` (1-based) and `prediction_columns(task)` (for EMI no frame), as
    `pipeline.submission.read.read_predictions` returns. Where the organiser example exists its lines are
    followed; a frame it lists that predictions lack takes the nearest predicted frame's values and is
    reported (an error with `strict`). A test subject without predictions, a gap inside a subject's frames,
    a duplicate or a NaN is a `SubmissionError` listing all of them. The file is written atomically.
    """
    spec = get_task(task)
    subjects = catalogue.splits.get(task, {}).get(split) or []
    if not subjects:
        raise SubmissionError(f"the catalogue has no {split} subjects for task {task}")
    columns = prediction_columns(task)
    missing_cols = [c for c in ["subject", *columns] if c not in predictions.columns]
    if missing_cols:
        raise SubmissionError(f"predictions lack the columns {', '.join(missing_cols)}")
    example = catalogue.example_submissions.get(task)
    if spec.unit == "clip":
        lines, report = _clip_lines(task, predictions, subjects, path, decimals)
    else:
        lines, report = _frame_lines(task, predictions, catalogue, subjects, path, example, strict, decimals)
    header = expected_header(task, example)
    text = "".join(line + "\n" for line in ([",".join(header)] if header else []) + lines)
    write_text(path, text)
    return report


def _frame_lines(
    task: str,
    predictions: pl.DataFrame,
    catalogue: Catalogue,
    subjects: list[str],
    path: Path,
    example: Path | None,
    strict: bool,
    decimals: int,
) -> tuple[list[str], SubmissionReport]:
    by_subject = _by_subject(predictions, task)
    prefix_of = {s: location_prefix(task, s, catalogue) for s in set(subjects) | set(by_subject)}
    subject_of = {p: s for s, p in prefix_of.items()}
    problems: list[str] = []
    report = SubmissionReport(task, path, 0, 0, example)
    # (subject, frames) blocks in line order
    blocks: list[tuple[str, np.ndarray]] = []
    if example is not None:
        for prefix, frames in _example_blocks(task, example):
            blocks.append((subject_of.get(prefix, prefix), frames))
    else:
        for subject in subjects:
            if subject in by_subject:
                frames = by_subject[subject][0]
                gaps = np.setdiff1d(np.arange(1, frames[-1] + 1), frames)
                if len(gaps):
                    problems.append(
                        f"{subject}: frames missing from predictions: {frame_ranges(gaps.tolist())}"
                    )
                blocks.append((subject, np.arange(1, frames[-1] + 1)))
            else:
                blocks.append((subject, np.zeros(0, dtype=np.int64)))
    lines: list[str] = []
    for subject, wanted in blocks:
        if subject not in by_subject:
            problems.append(f"{subject}: no predictions for this subject")
            continue
        frames, values = by_subject[subject]
        right = np.clip(np.searchsorted(frames, wanted), 0, len(frames) - 1)
        left = np.clip(right - 1, 0, len(frames) - 1)
        exact = frames[right] == wanted
        nearest = np.where(np.abs(frames[left] - wanted) <= np.abs(frames[right] - wanted), left, right)
        rows = np.where(exact, right, nearest)
        if not exact.all():
            held = wanted[~exact].tolist()
            if strict:
                problems.append(
                    f"{subject}: frames listed by the example but not predicted: {frame_ranges(held)}"
                )
            report.held[subject] = held
        if example is not None:
            extra = len(np.setdiff1d(frames, wanted))
            if extra:
                report.dropped[subject] = extra
        prefix = prefix_of.get(subject, subject)
        texts = _format_rows(task, values[rows], decimals)
        lines.extend(
            f"{image_location(task, prefix, int(f))},{t}" for f, t in zip(wanted, texts, strict=True)
        )
    if problems:
        raise SubmissionError(f"cannot write the {task} submission:", problems)
    report.lines, report.subjects = len(lines), len({s for s, _ in blocks})
    return lines, report


def _clip_lines(
    task: str, predictions: pl.DataFrame, subjects: list[str], path: Path, decimals: int
) -> tuple[list[str], SubmissionReport]:
    by_subject = _by_subject(predictions, task)
    missing = [s for s in subjects if s not in by_subject]
    if missing:
        raise SubmissionError(f"no {task} predictions for {len(missing)} clips:", missing)
    texts = _format_rows(task, np.concatenate([by_subject[s][1] for s in subjects]), decimals)
    lines = [f"{s},{t}" for s, t in zip(subjects, texts, strict=True)]
    return lines, SubmissionReport(task, path, len(lines), len(subjects))


def _by_subject(predictions: pl.DataFrame, task: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """subject -> (sorted 1-based frames (n,), values (n, K) float64); duplicates and NaN are errors."""
    columns = prediction_columns(task)
    clip = get_task(task).unit == "clip"
    table = predictions if clip else predictions.sort(["subject", "frame"])
    problems: list[str] = []
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for (subject,), group in table.group_by("subject", maintain_order=True):
        values = group.select(columns).to_numpy().astype(np.float64)  # (n, K)
        frames = np.ones(len(group), np.int64) if clip else group["frame"].to_numpy().astype(np.int64)
        duplicated = np.unique(frames[1:][frames[1:] == frames[:-1]]).tolist()
        if duplicated:
            problems.append(f"{subject}: frames predicted more than once: {frame_ranges(duplicated)}")
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            problems.append(
                f"{subject}: NaN or infinite values at frames {frame_ranges(frames[bad].tolist())}"
            )
        out[str(subject)] = (frames, values)
    if problems:
        raise SubmissionError("the predictions cannot be submitted:", problems)
    return out


def _example_blocks(task: str, example: Path) -> list[tuple[str, np.ndarray]]:
    """The example's locations as runs of one prefix: [(prefix, 1-based frames in line order)]."""
    blocks: list[tuple[str, list[int]]] = []
    for number, location in enumerate(read_example(example, task)[1], start=2):
        try:
            prefix, frame = parse_location(task, location)
        except ValueError as e:
            raise SubmissionError(f"organiser example {example}, line {number}: {e}") from None
        if not blocks or blocks[-1][0] != prefix:
            blocks.append((prefix, []))
        blocks[-1][1].append(frame)
    return [(p, np.asarray(f, dtype=np.int64)) for p, f in blocks]


def _format_rows(task: str, values: np.ndarray, decimals: int) -> list[str]:
    """Text of the value fields of each row of values (n, K)."""
    spec = get_task(task)
    if spec.kind == "regression":
        lo, hi = spec.value_range
        clipped = np.clip(values, lo, hi)
        return [",".join(format_value(v, decimals) for v in row) for row in clipped.tolist()]
    ints = np.rint(values).astype(np.int64)
    lo, hi = int(spec.value_range[0]), int(spec.value_range[1])
    if (ints != values).any() or (ints < lo).any() or (ints > hi).any():
        raise SubmissionError(f"{task} predictions must be integers in {lo}..{hi}")
    return [",".join(map(str, row)) for row in ints.tolist()]
