"""The ABAW submission format: value columns, header lines, image locations, value text, example files.

Aff-Wild2 tracks (va, au, expr): a header `image_location,<task header>`, then one line per frame,
`<subject incl. _left/_right>/<frame:05d>.jpg,<values>`, frames from 00001. AH: no header, one line per
frame, `<video path>/frame-<k>.jpg,<0|1>`, frames from 0. EMI: a CSV `Filename,Admiration,...,Joy`, one row
per clip. The columns and headers come from the task table (`model.tasks`). Source: the ABAW 6th-8th
challenge material. The writer, the checker and the predictions reader all read the format from here.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from model.tasks import get_task
from pipeline.datasets.catalogue import Catalogue


def prediction_columns(task: str) -> list[str]:
    """Columns of a predictions table that a submission line holds, in submission order: the task's label
    columns (EXPR: one class, `expression`, although the header names all 8)."""
    return list(get_task(task).label_columns)


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


def expected_header(task: str, example: Path | None) -> tuple[str, ...] | None:
    """The header line's fields of a `task` submission: the organiser example's where it has one, else the
    official one; None for AH (no header)."""
    header = submission_header(task)
    if example is not None and header is not None:
        header = tuple(read_example(example, task)[0] or header)
    return header


def read_example(path: Path, task: str) -> tuple[list[str] | None, list[str]]:
    """(header fields or None, image locations in order) of an organiser example submission."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = None
    if lines and not lines[0].split(",", 1)[0].strip().lower().endswith(".jpg"):
        header, lines = [f.strip() for f in lines[0].split(",")], lines[1:]
    return header, [line.split(",", 1)[0].strip() for line in lines if line.strip()]


def frame_ranges(frames: list[int]) -> str:
    """'1-3, 7, 9-10' from sorted integers."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return ", ".join(f"{a}-{b}" if b != a else f"{a}" for a, b in runs)
