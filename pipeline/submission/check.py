"""The submission checker: every problem of an ABAW submission file, each with its line number.

Checks the header, that every expected line is present exactly once and in order, and each line's values
(VA in [-1, 1], AU 0/1, EXPR an integer 0..7, AH 0/1, EMI in [0, 1], never NaN). The expected lines come
from the organiser example file when the catalogue has one, else from the test subjects (release-list order)
and their frame counts; without frame counts each subject's frames must run contiguously from the first.
Format facts: `pipeline.submission.format`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from pathlib import Path

from model.tasks import get_task
from pipeline.datasets.catalogue import Catalogue
from pipeline.submission.format import (
    expected_header,
    image_location,
    location_prefix,
    parse_location,
    prediction_columns,
    read_example,
)


@dataclass(frozen=True)
class Problem:
    """One fault of a submission file."""

    line: int | None  # 1-based line number in the file (the header is line 1); None for the whole file
    message: str  # what is wrong

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


def check_submission(
    task: str, path: Path, catalogue: Catalogue, frame_counts: dict[str, int] | None = None
) -> list[Problem]:
    """Every problem of the submission file `path` of `task`; an empty list when it is valid.

    `frame_counts` (subject -> number of frames, e.g. from the predictions) fixes each test subject's lines
    when no organiser example file is present; a subject it does not name, or all of them when it is None,
    is checked for frames running contiguously from the first.
    """
    get_task(task)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        return [Problem(None, f"cannot read {path}: {e}")]
    problems: list[Problem] = []
    example = catalogue.example_submissions.get(task)
    header = expected_header(task, example)
    first = 1
    if header is not None:
        if not lines or tuple(f.strip() for f in lines[0].split(",")) != header:
            got = repr(lines[0]) if lines else "an empty file"
            problems.append(Problem(1, f"header should be {','.join(header)!r}, found {got}"))
        first = 2
    elif lines and not lines[0].split(",", 1)[0].endswith(".jpg"):
        problems.append(Problem(1, f"{task} submissions have no header; found {lines[0]!r}"))
        first = 2
    width = len(prediction_columns(task))  # EXPR: one class although the header names all 8
    keys: list[tuple[int, str]] = []  # (line number, key) of every well-formed line
    for number, line in enumerate(lines[first - 1 :], start=first):
        if not line.strip():
            problems.append(Problem(number, "empty line"))
            continue
        fields = line.split(",")
        if len(fields) != width + 1:
            problems.append(Problem(number, f"{len(fields)} fields, expected {width + 1}"))
        else:
            problems.extend(Problem(number, m) for m in _value_problems(task, fields[1:]))
        keys.append((number, fields[0].strip()))
    expected, early = _expected_keys(task, catalogue, keys, example, frame_counts)
    problems.extend(early)
    problems.extend(_sequence_problems(keys, expected))
    return sorted(problems, key=lambda p: (p.line is not None, p.line or 0))


def _value_problems(task: str, fields: list[str]) -> list[str]:
    """What is wrong with the value fields of one line."""
    spec = get_task(task)
    out = []
    for name, text in zip(spec.header if task != "expr" else ("class",), fields, strict=False):
        text = text.strip()
        if spec.kind == "regression":
            try:
                value = float(text)
            except ValueError:
                out.append(f"{name} {text!r} is not a number")
                continue
            lo, hi = spec.value_range
            if not math.isfinite(value):
                out.append(f"{name} is {text}")
            elif not lo <= value <= hi:
                out.append(f"{name} {text} outside [{lo:g}, {hi:g}]")
        else:
            lo, hi = int(spec.value_range[0]), int(spec.value_range[1])
            if not (text.isdigit() and lo <= int(text) <= hi):
                out.append(f"{name} {text!r} is not an integer in {lo}..{hi}")
    return out


def _expected_keys(
    task: str,
    catalogue: Catalogue,
    keys: list[tuple[int, str]],
    example: Path | None,
    frame_counts: dict[str, int] | None,
) -> tuple[list[str], list[Problem]]:
    """The keys (image locations; EMI file names) expected in order, and problems found on the way."""
    if example is not None:
        return read_example(example, task)[1], []
    subjects = catalogue.splits.get(task, {}).get("test") or []
    if not subjects:
        return [], [Problem(None, f"the catalogue has no test subjects for task {task}: nothing to check")]
    if get_task(task).unit == "clip":
        return list(subjects), []
    prefixes = {s: location_prefix(task, s, catalogue) for s in subjects}
    seen_max: dict[str, int] = {}
    for _, key in keys:
        try:
            prefix, frame = parse_location(task, key)
        except ValueError:
            continue
        seen_max[prefix] = max(seen_max.get(prefix, 0), frame)
    problems: list[Problem] = []
    expected: list[str] = []
    for subject in subjects:
        count = (frame_counts or {}).get(subject, seen_max.get(prefixes[subject], 0))
        if count == 0:
            problems.append(Problem(None, f"no lines for test subject {subject}"))
        expected.extend(image_location(task, prefixes[subject], f) for f in range(1, count + 1))
    return expected, problems


def _sequence_problems(keys: list[tuple[int, str]], expected: list[str]) -> list[Problem]:
    """Unexpected, duplicate, out-of-order and missing lines, comparing keys with the expected order."""
    position = {key: i for i, key in enumerate(expected)}
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    ordered: list[tuple[int, int]] = []  # (line number, expected position) of first occurrences
    for number, key in keys:
        if key not in position:
            problems.append(Problem(number, f"unexpected line {key!r} (not in the expected list)"))
        elif key in first_line:
            problems.append(Problem(number, f"duplicate of line {first_line[key]} ({key})"))
        else:
            first_line[key] = number
            ordered.append((number, position[key]))
    in_order = _longest_increasing(ordered)
    for number, pos in ordered:
        if number not in in_order:
            problems.append(Problem(number, f"out of order: {expected[pos]} belongs elsewhere"))
    start = None
    for i in range(len(expected) + 1):
        absent = i < len(expected) and expected[i] not in first_line
        if absent and start is None:
            start = i
        elif not absent and start is not None:
            where = f"after line {first_line[expected[start - 1]]}" if start else "at the start"
            span = expected[start] if i - start == 1 else f"{expected[start]} .. {expected[i - 1]}"
            problems.append(Problem(None, f"missing {i - start} line(s) {span} (expected {where})"))
            start = None
    return problems


def _longest_increasing(ordered: list[tuple[int, int]]) -> set[int]:
    """Line numbers of a longest run of `ordered` whose expected positions increase (patience sorting)."""
    tails: list[int] = []  # tails[k]: smallest last position of an increasing run of length k + 1
    tail_index: list[int] = []  # index into `ordered` of that last element
    parent = [-1] * len(ordered)
    for i, (_, pos) in enumerate(ordered):
        k = bisect.bisect_left(tails, pos)
        parent[i] = tail_index[k - 1] if k else -1
        if k == len(tails):
            tails.append(pos)
            tail_index.append(i)
        else:
            tails[k], tail_index[k] = pos, i
    out: set[int] = set()
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        out.add(ordered[i][0])
        i = parent[i]
    return out
