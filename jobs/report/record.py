"""OUT/run.json as the report reads it: what the run did and the files it names.

Every key is optional except the output folder, so that the record of an older run still reads: what a
record lacks, the report leaves out (and says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.run.report import RUN_FILE


class ReportError(ValueError):
    """A report cannot be made: no run record, or one that cannot be read; the message says why."""


@dataclass
class RunRecord:
    """The content of one OUT/run.json."""

    output: Path  # the run's output folder (where run.json is)
    input: Path | None  # the input folder
    cache: str | None  # the feature cache
    split: str  # split predicted
    tasks: list[str]  # tasks, in the order asked for
    predictions: dict[str, Path]  # task -> predictions Parquet
    stages: list[dict[str, Any]] = field(
        default_factory=list
    )  # name, seconds, items, unit, note, task, parts
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> path, source, epoch, ...
    metrics: dict[str, str] = field(default_factory=dict)  # task -> official metric of the split
    counts: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # task -> videos, subjects, frames, filled
    failures: list[dict[str, str]] = field(default_factory=list)  # video, subject, stage, reason, task
    submissions: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> path, valid, problems
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)  # video -> path, fps, frames
    raw: dict[str, Any] = field(default_factory=dict)  # the whole record (started, finished, exit_code, ...)


def read_record(run: Path) -> RunRecord:
    """The record of the run whose output folder is `run`."""
    path = Path(run) / RUN_FILE
    if not path.is_file():
        raise ReportError(f"{path}: no run record (is {run} the --output folder of `lwaffect run`?)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: cannot read the run record: {e}") from None
    if not isinstance(raw, dict) or "tasks" not in raw:
        raise ReportError(f"{path}: not a run record of `lwaffect run` (no tasks)")
    return RunRecord(
        output=Path(run),
        input=Path(raw["input"]) if raw.get("input") else None,
        cache=raw.get("cache"),
        split=str(raw.get("split", "")),
        tasks=list(raw["tasks"]),
        predictions={t: Path(p) for t, p in (raw.get("predictions") or {}).items()},
        stages=list(raw.get("stages") or []),
        checkpoints=dict(raw.get("checkpoints") or {}),
        metrics=dict(raw.get("metrics") or {}),
        counts=dict(raw.get("counts") or {}),
        failures=list(raw.get("failures") or []),
        submissions=dict(raw.get("submissions") or {}),
        videos=dict(raw.get("videos") or {}),
        raw=raw,
    )
