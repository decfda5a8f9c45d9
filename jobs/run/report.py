"""What a run did: per-stage times, per-task results, failures; the end-of-run summary and OUT/run.json.

`OUT/run.json` records the input, cache, tasks, split, the checkpoint of each task (with its hash, where it
came from and its training settings), every stage's time (the extraction's with its parts), the files
written (the HTML report among them), every failure with its task, and the path, frame rate and frame
count of every video predicted. `lwaffect report` and a later rerun read it; it is rewritten atomically
at the end of each run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model import __version__
from model.tasks import get_task

RUN_FILE = "run.json"  # OUT/run.json
SUBMISSION_DIR = "submission"  # OUT/submission/<task>/<file>
FAILURES_FILE = "failures.parquet"  # OUT/failures.parquet


def submission_path(output: Path, task: str) -> Path:
    """OUT/submission/<task>/predictions.txt (EMI: predictions.csv)."""
    name = "predictions.csv" if get_task(task).unit == "clip" else "predictions.txt"
    return Path(output) / SUBMISSION_DIR / task / name


@dataclass(frozen=True)
class Stage:
    """Time and amount of work of one stage."""

    name: str  # extract, train, predict, submit
    seconds: float  # wall time
    items: int  # frames (lines for submit, clips for EMI) processed
    unit: str = "frames"  # what `items` counts
    note: str = ""  # e.g. how many shards were reused
    task: str = ""  # the task the stage worked for; "" for stages shared by every task (extract)
    # the stage's own parts: name -> {"items", "seconds"} (extract: decode, detect, align, backbone, write)
    parts: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        note = f"  ({self.note})" if self.note else ""
        rate = f"{self.rate:10.1f} {self.unit}/s" if self.items else f"{'-':>10} {self.unit}/s"
        return f"  {self.name:<8} {self.seconds:8.1f}s  {rate}{note}"


@dataclass
class TaskModel:
    """The checkpoint a task was predicted with, and where it came from."""

    task: str  # task name
    path: Path  # the checkpoint file
    source: str  # given (--weights), reused, resumed or trained (by this run, in OUT/checkpoints/<task>)
    train_config: dict | None = None  # the training settings it records
    metric: dict | None = None  # the validation metric it records
    epoch: int | None = None  # the epoch it was saved at
    final: bool = False  # trained on train + validation (--final)
    sha256: str = ""  # hash of the file


@dataclass
class TaskReport:
    """What a run did for one task and where its files are."""

    task: str  # task name
    split: str  # split processed
    videos: int  # videos of the split's subjects
    subjects: int  # subjects of the split
    frames: int  # frames predicted (clips for EMI)
    filled: int  # frames without a face or of a failed video, filled
    predictions: Path  # OUT/predictions/<task>.parquet
    failures_path: Path  # OUT/failures.parquet
    failures: list[dict[str, str]] = field(
        default_factory=list
    )  # failures table rows of this task's subjects
    stages: list[Stage] = field(default_factory=list)  # per-stage time and throughput
    submission: Path | None = None  # the submission file (test and all splits)
    problems: list[str] = field(default_factory=list)  # submission writer / checker problems
    metric: str | None = None  # official metric on a labelled split, e.g. "mean CCC ... 0.4123"
    notes: list[str] = field(default_factory=list)  # other remarks for the user
    model: TaskModel | None = None  # the checkpoint used

    @property
    def exit_code(self) -> int:
        """0 when every input succeeded and the submission checks, 2 otherwise."""
        return 2 if self.failures or self.problems else 0

    def summary(self) -> str:
        """The end-of-run summary of this task: counts, per-stage throughput and where the files are."""
        unit = "clips" if get_task(self.task).unit == "clip" else "frames"
        share = f" ({100 * self.filled / self.frames:.1f}%)" if self.frames else ""
        lines = [
            f"lwaffect run {self.task}, {self.split} split: {self.videos} videos, {self.subjects} subjects, "
            f"{self.frames} {unit}, {self.filled} frames filled{share}, {len(self.failures)} failures"
        ]
        lines += [s.line() for s in self.stages]
        if self.model is not None:
            lines.append(f"  model        {self.model.path} ({self.model.source})")
        if self.metric:
            lines.append(f"  {self.split} {self.metric}")
        lines += [f"  {n}" for n in self.notes]
        lines.append(f"  predictions  {self.predictions}")
        if self.submission is not None:
            lines.append(f"  submission   {self.submission} ({'problems' if self.problems else 'valid'})")
        lines += _few([f"    {p}" for p in self.problems])
        lines.append(f"  failures     {self.failures_path} ({len(self.failures)})")
        lines += _few(
            [f"    {f['video'] or f['subject']} [{f['stage']}]: {f['reason']}" for f in self.failures]
        )
        return "\n".join(lines)


def _few(lines: list[str], most: int = 20) -> list[str]:
    return lines[:most] + ([f"    ... and {len(lines) - most} more"] if len(lines) > most else [])


@dataclass
class RunReport:
    """What a whole run did: the shared stages, one report per task, every failure."""

    input: Path  # the input folder
    cache: str  # the feature cache
    output: Path  # the output folder
    split: str  # split predicted
    tasks: list[TaskReport] = field(default_factory=list)  # one per task, in the order asked for
    stages: list[Stage] = field(default_factory=list)  # stages shared by every task (extract)
    failures: list[dict[str, str]] = field(default_factory=list)  # every failure, with its task ("" = all)
    started: float = field(default_factory=time.time)  # Unix time the run started
    # video -> {"path", "fps", "frames"} of every video predicted (what the HTML report draws time from)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Path | None = None  # OUT/report.html once written
    report_error: str = ""  # why the HTML report could not be written, if it could not

    @property
    def exit_code(self) -> int:
        """0 when every input succeeded and every submission checks, 2 otherwise."""
        return 2 if self.failures or any(t.exit_code for t in self.tasks) else 0

    @property
    def run_file(self) -> Path:
        return Path(self.output) / RUN_FILE

    def task(self, name: str) -> TaskReport:
        return next(t for t in self.tasks if t.task == name)

    def summary(self) -> str:
        lines = [s.line() for s in self.stages]
        for t in self.tasks:
            lines.append(t.summary())
        lines.append(f"  run record   {self.run_file}")
        if self.report is not None:
            lines.append(f"  report       {self.report} (open it in a browser)")
        elif self.report_error:
            lines.append(f"  report       not written: {self.report_error}")
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        """The content of OUT/run.json."""
        return {
            "lwaffect": __version__,
            "started": _iso(self.started),
            "finished": _iso(time.time()),
            "input": str(self.input),
            "cache": self.cache,
            "output": str(self.output),
            "split": self.split,
            "tasks": [t.task for t in self.tasks],
            "exit_code": self.exit_code,
            "stages": [asdict(s) for s in self.stages + [s for t in self.tasks for s in t.stages]],
            "checkpoints": {t.task: _model_record(t.model) for t in self.tasks if t.model is not None},
            "predictions": {t.task: str(t.predictions) for t in self.tasks},
            "submissions": {
                t.task: {"path": str(t.submission), "valid": not t.problems, "problems": t.problems}
                for t in self.tasks
                if t.submission is not None
            },
            "metrics": {t.task: t.metric for t in self.tasks if t.metric},
            "counts": {
                t.task: {"videos": t.videos, "subjects": t.subjects, "frames": t.frames, "filled": t.filled}
                for t in self.tasks
            },  # fmt: skip
            "failures": self.failures,
            "failures_file": str(Path(self.output) / FAILURES_FILE),
            "videos": self.videos,
            "report": None if self.report is None else str(self.report),
            "report_error": self.report_error or None,
        }

    def write(self, write_text: Any) -> Path:
        """Write OUT/run.json with `write_text(path, text)` (an atomic writer)."""
        write_text(self.run_file, json.dumps(self.record(), indent=1, default=str) + "\n")
        return self.run_file


def _model_record(model: TaskModel) -> dict[str, Any]:
    d = asdict(model)
    d["path"] = str(model.path)
    return d


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
