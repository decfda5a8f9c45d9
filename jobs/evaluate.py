"""Scoring and submission jobs behind `lwaffect evaluate`, `lwaffect submit` and `lwaffect check-submission`.

Each job reads the input folder's catalogue and a predictions file, calls the pipeline's metrics,
submission writer or checker, and returns a result object the command line prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model.tasks import get_task
from pipeline import datasets
from pipeline.datasets.catalogue import Catalogue
from pipeline.metrics import Average, MetricResult, compute_metric
from pipeline.submission.check import Problem, check_submission
from pipeline.submission.format import frame_ranges
from pipeline.submission.read import PredictionsError, frame_counts, pair_with_labels, read_predictions
from pipeline.submission.write import SubmissionReport, write_submission

# errors that mean "bad input or configuration" (CatalogueError, PredictionsError, SubmissionError,
# MetricError and an unknown task are ValueErrors): the command prints them and exits with status 1
USER_ERRORS = (ValueError, OSError)


class MissingPredictionsError(PredictionsError):
    """Predictions lack labelled frames or subjects of the split; the message lists them."""


@dataclass(frozen=True)
class EvaluateConfig:
    """What `lwaffect evaluate` scores."""

    task: str  # task name: va, au, expr, ah, emi
    predictions: Path  # predictions Parquet or ABAW-format predictions.txt / EMI CSV
    input: Path  # input folder with the labels
    split: str = "validation"  # split whose labels are scored: train, validation or all
    allow_missing: bool = False  # leave frames without a prediction out of the score instead of failing
    average: Average = "macro"  # AH F1 averaging: "macro" over the 2 classes or "binary" (class 1)


@dataclass
class Evaluation:
    """The official metric of a predictions file on one split, and what was left out."""

    result: MetricResult  # the official figure and its parts
    split: str  # the split scored
    subjects: int  # labelled subjects scored
    missing: dict[str, list[int]] = field(default_factory=dict)  # subject -> valid frames without prediction
    missing_subjects: list[str] = field(default_factory=list)  # labelled subjects without any prediction
    extra: int = 0  # predicted rows outside the labelled frames

    @property
    def missing_count(self) -> int:
        return sum(len(f) for f in self.missing.values())

    def to_dict(self) -> dict:
        return {**self.result.to_dict(), "split": self.split, "subjects": self.subjects,
                "missing_frames": self.missing_count, "missing_subjects": list(self.missing_subjects),
                "missing": {s: frame_ranges(f) for s, f in self.missing.items()}, "extra": self.extra}  # fmt: skip

    def table(self) -> str:
        """The result as an aligned text table."""
        r = self.result
        rows = [("task", r.task), ("split", self.split), ("subjects", str(self.subjects)),
                ("scored", str(r.count)), (r.metric, f"{r.value:.4f}")]  # fmt: skip
        rows += [(f"  {name}", f"{value:.4f}") for name, value in r.parts.items()]
        if self.missing_count:
            rows.append(("left out (missing)", f"{self.missing_count} in {len(self.missing)} subjects"))
        if self.extra:
            rows.append(("ignored (unlabelled)", str(self.extra)))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def evaluate_predictions(cfg: EvaluateConfig, catalogue: Catalogue | None = None) -> Evaluation:
    """Score `cfg.predictions` against the labels of `cfg.split` with the task's official metric.

    Labelled frames (clips) the predictions lack are a MissingPredictionsError listing them, unless
    `cfg.allow_missing`, which leaves them out of the score and counts them.
    """
    get_task(cfg.task)
    catalogue = catalogue if catalogue is not None else datasets.load_catalogue(cfg.input)
    table = read_predictions(cfg.predictions, cfg.task, catalogue)
    paired = pair_with_labels(cfg.task, table, catalogue, cfg.split)
    if paired.missing_count and not cfg.allow_missing:
        listing = [f"{s}: frames {frame_ranges(f)}" for s, f in paired.missing.items()]
        head = (f"{cfg.predictions} lacks predictions for {paired.missing_count} labelled frames of "
                f"{len(paired.missing)} subjects of the {cfg.split} split")  # fmt: skip
        if paired.missing_subjects:
            head += f" (no prediction at all for: {', '.join(paired.missing_subjects)})"
        raise MissingPredictionsError("\n  ".join([head, *listing, "(--allow-missing leaves them out)"]))
    result = compute_metric(cfg.task, paired.pred, paired.labels, paired.mask, average=cfg.average)
    return Evaluation(result, cfg.split, len(paired.subjects), paired.missing, paired.missing_subjects,
                      paired.extra)  # fmt: skip


@dataclass(frozen=True)
class SubmitConfig:
    """What `lwaffect submit` writes."""

    task: str  # task name
    predictions: Path  # predictions Parquet (or an ABAW-format file to rewrite)
    input: Path  # input folder: test list, organiser example file
    output: Path  # submission file to write
    strict: bool = False  # frames the example lists but predictions lack are an error, not held


@dataclass
class Submission:
    """A written submission and what the checker found in it."""

    report: SubmissionReport  # what was written
    problems: list[Problem]  # checker problems of the written file; empty when valid


def submit_predictions(cfg: SubmitConfig, catalogue: Catalogue | None = None) -> Submission:
    """Write the submission file of the test split, then check it against the test list and frame counts."""
    catalogue = catalogue if catalogue is not None else datasets.load_catalogue(cfg.input)
    table = read_predictions(cfg.predictions, cfg.task, catalogue)
    report = write_submission(cfg.task, table, catalogue, cfg.output, strict=cfg.strict)
    problems = check_submission(cfg.task, cfg.output, catalogue, frame_counts(table) or None)
    return Submission(report, problems)


@dataclass(frozen=True)
class CheckConfig:
    """What `lwaffect check-submission` checks."""

    task: str  # task name
    file: Path  # submission file
    input: Path  # input folder: test list, organiser example file
    predictions: Path | None = None  # predictions whose frame counts fix the expected lines


def check_submission_file(cfg: CheckConfig, catalogue: Catalogue | None = None) -> list[Problem]:
    """Every problem of a submission file; an empty list when it is valid."""
    get_task(cfg.task)
    catalogue = catalogue if catalogue is not None else datasets.load_catalogue(cfg.input)
    counts = None
    if cfg.predictions is not None:
        counts = frame_counts(read_predictions(cfg.predictions, cfg.task, catalogue)) or None
    return check_submission(cfg.task, cfg.file, catalogue, counts)
