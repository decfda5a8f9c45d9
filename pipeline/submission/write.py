"""ABAW submission files: their format (headers, image locations, values) and the writer.

Aff-Wild2 tracks (va, au, expr): a header, then one line per frame of every test subject in the release-list
order, `<subject incl. _left/_right>/<frame:05d>.jpg,<values>`, frames from 00001; where the organiser
example file is present its lines and their order are followed exactly. AH: no header, one line per frame,
`<video path>/frame-<k>.jpg,<0|1>`, frames from 0. EMI: a CSV `Filename,Admiration,...,Joy`, one row per
clip, intensities clipped to [0, 1]. Source: the ABAW 6th-8th challenge material. The checker lives in
`pipeline.submission.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import polars as pl

from model.tasks import AU_NAMES, EMI_NAMES, get_task
from pipeline.datasets.catalogue import Catalogue
from pipeline.io import write_text

AFFWILD2_TASKS = ("va", "au", "expr")


class SubmissionError(ValueError):
    """A submission cannot be written; `problems` lists every reason (subjects, frames, values)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        super().__init__("\n  ".join([message, *self.problems]))


# ------------------------------------------------------------------------------------------------ format


def prediction_columns(task: str) -> list[str]:
    """Columns of a predictions table that a submission line holds, in submission order."""
    return {
        "va": ["valence", "arousal"],
        "au": list(AU_NAMES),
        "expr": ["expression"],
        "ah": ["ah"],
        "emi": list(EMI_NAMES),
    }[get_task(task).name]


def submission_header(task: str) -> tuple[str, ...] | None:
    """The official header line's fields, or None for AH (no header)."""
    spec = get_task(task)
    if task == "ah":
        return None
    if task == "emi":
        return ("Filename", *spec.header)
    return ("image_location", *spec.header)


def location_prefix(task: str, subject: str, catalogue: Catalogue | None = None) -> str:
    """What precedes `/<frame>` in an image location: the subject name, for AH the video's relative path.

    AH locations name the video file relative to the data set's `videos/` folder (else to its root), e.g.
    `<pid>/Visite_1/<pid>_Question_N_<date>_Video.mp4`; without a catalogue entry the subject name is used.
    """
    if task != "ah" or catalogue is None or subject not in catalogue.subjects:
        return subject
    video = catalogue.videos.get(catalogue.subjects[subject].video)
    if video is None:
        return subject
    for base in (catalogue.root / "videos", catalogue.root):
        try:
            return PurePosixPath(video.path.relative_to(base)).as_posix()
        except ValueError:
            continue
    return video.path.name


def image_location(task: str, prefix: str, frame: int) -> str:
    """The location of 1-based frame `frame`: `<prefix>/00001.jpg`, for AH `<prefix>/frame-0.jpg`."""
    if task == "ah":
        return f"{prefix}/frame-{frame - 1}.jpg"
    return f"{prefix}/{frame:05d}.jpg"


def parse_location(task: str, location: str) -> tuple[str, int]:
    """(prefix, 1-based frame) of an image location; ValueError when it has the wrong form."""
    prefix, sep, name = location.rpartition("/")
    if not sep or not prefix:
        raise ValueError(f"image location {location!r} has no '<subject>/' part")
    stem, dot, ext = name.rpartition(".")
    if not dot or ext.lower() != "jpg":
        raise ValueError(f"image location {location!r} does not end in .jpg")
    if task == "ah":
        if not stem.startswith("frame-") or not stem[6:].isdigit():
            raise ValueError(f"image location {location!r} is not '<video>/frame-<k>.jpg'")
        return prefix, int(stem[6:]) + 1
    if not stem.isdigit():
        raise ValueError(f"image location {location!r} is not '<subject>/<frame:05d>.jpg'")
    return prefix, int(stem)


def format_value(value: float, decimals: int = 4) -> str:
    """Compact fixed-point text: at most `decimals` decimals, no trailing zeros, never '-0' or an exponent."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def read_example(path: Path, task: str) -> tuple[list[str] | None, list[str]]:
    """(header fields or None, image locations in order) of an organiser example submission."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = None
    if lines and not lines[0].split(",", 1)[0].strip().lower().endswith(".jpg"):
        header, lines = [f.strip() for f in lines[0].split(",")], lines[1:]
    return header, [line.split(",", 1)[0].strip() for line in lines if line.strip()]


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
    header = submission_header(task)
    if example is not None and header is not None:
        header = tuple(read_example(example, task)[0] or header)
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


def frame_ranges(frames: list[int]) -> str:
    """'1-3, 7, 9-10' from sorted integers."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return ", ".join(f"{a}-{b}" if b != a else f"{a}" for a, b in runs)
