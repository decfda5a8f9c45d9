"""`lwaffect run`: from a folder of videos to predictions and a checked submission file in one call.

Stages: read the catalogue, extract the feature cache of the split's subjects (reusing and completing an
existing cache), predict every frame with overlapping windows averaged and fill frames without a face
(`jobs.predict`), write the challenge submission of the test split (`pipeline.submission.write`) and check it
(`pipeline.submission.check`). Bad inputs do not stop the run: each one is listed in OUT/failures.parquet
and makes the exit status 2. The run ends with a summary: videos, frames, frames filled, failures,
per-stage throughput and where the files are.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.predict import PredictConfig, PredictReport, predict
from model.tasks import SPLITS, get_task
from pipeline.cache.schema import FAILURES_SCHEMA
from pipeline.fill import FillMethod
from pipeline.io import write_table

FAILURES_FILE = "failures.parquet"  # OUT/failures.parquet
SUBMISSION_DIR = "submission"  # OUT/submission/<task>/<file>


class RunError(ValueError):
    """A usage or configuration error found before or while running; the message says what to do."""


@dataclass(frozen=True)
class RunConfig:
    """One end-to-end run over an input folder."""

    input: Path  # data set folder (Aff-Wild2, EMI, AH layout or plain)
    task: str  # va, au, expr, ah or emi
    weights: Path | None = None  # checkpoint made by `lwaffect train`; required
    output: Path = Path("out")  # output folder: predictions/, submission/, failures.parquet, cache/
    split: str = "test"  # split whose subjects are processed: train, validation, test or all
    cache: str | None = None  # feature cache location; None: OUTPUT/cache
    address: str | None = None  # Ray cluster to extract on; None: $RAY_ADDRESS, else a local Ray
    stride: int | None = None  # frames between prediction windows; None: the checkpoint's
    fill: FillMethod = "linear"  # frames without a face: "linear" or "nearest"
    device: str = "cpu"  # device of the temporal model: cpu, cuda or cuda:N

    @property
    def cache_location(self) -> str:
        return self.cache if self.cache is not None else str(Path(self.output) / "cache")


@dataclass(frozen=True)
class Stage:
    """Time and amount of work of one stage."""

    name: str  # extract, predict, submit
    seconds: float  # wall time
    items: int  # frames (lines for submit, clips for EMI) processed
    unit: str = "frames"  # what `items` counts
    note: str = ""  # e.g. how many shards were reused

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class RunReport:
    """What a run did and where its files are."""

    task: str  # task name
    split: str  # split processed
    videos: int  # videos of the split's subjects
    subjects: int  # subjects of the split
    frames: int  # frames predicted (clips for EMI)
    filled: int  # frames without a face, filled
    predictions: Path  # OUT/predictions/<task>.parquet
    failures_path: Path  # OUT/failures.parquet
    failures: list[dict[str, str]] = field(default_factory=list)  # rows of the failures table
    stages: list[Stage] = field(default_factory=list)  # per-stage time and throughput
    submission: Path | None = None  # the submission file (test and all splits)
    problems: list[str] = field(default_factory=list)  # submission writer / checker problems
    metric: str | None = None  # official metric on a labelled split, e.g. "mean CCC ... 0.4123"
    notes: list[str] = field(default_factory=list)  # other remarks for the user

    @property
    def exit_code(self) -> int:
        """0 when every input succeeded and the submission checks, 2 otherwise."""
        return 2 if self.failures or self.problems else 0

    def summary(self) -> str:
        """The end-of-run summary: counts, per-stage throughput and where the files are."""
        unit = "clips" if get_task(self.task).unit == "clip" else "frames"
        share = f" ({100 * self.filled / self.frames:.1f}%)" if self.frames else ""
        lines = [
            f"lwaffect run {self.task}, {self.split} split: {self.videos} videos, {self.subjects} subjects, "
            f"{self.frames} {unit}, {self.filled} frames filled{share}, {len(self.failures)} failures"
        ]
        for s in self.stages:
            note = f"  ({s.note})" if s.note else ""
            rate = f"{s.rate:10.1f} {s.unit}/s" if s.items else f"{'-':>10} {s.unit}/s"
            lines.append(f"  {s.name:<8} {s.seconds:8.1f}s  {rate}{note}")
        if self.metric:
            lines.append(f"  {self.split} {self.metric}")
        lines += [f"  {n}" for n in self.notes]
        lines.append(f"  predictions  {self.predictions}")
        if self.submission is not None:
            lines.append(f"  submission   {self.submission} ({'problems' if self.problems else 'valid'})")
        lines += [f"    {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"    ... and {len(self.problems) - 20} more")
        lines.append(f"  failures     {self.failures_path} ({len(self.failures)})")
        lines += [
            f"    {f['video'] or f['subject']} [{f['stage']}]: {f['reason']}" for f in self.failures[:20]
        ]
        if len(self.failures) > 20:
            lines.append(f"    ... and {len(self.failures) - 20} more")
        return "\n".join(lines)


def submission_path(output: Path, task: str) -> Path:
    """OUT/submission/<task>/predictions.txt (EMI: predictions.csv)."""
    name = "predictions.csv" if get_task(task).unit == "clip" else "predictions.txt"
    return Path(output) / SUBMISSION_DIR / task / name


def weights_needed(cfg: RunConfig) -> str:
    """What to say when `--weights` is missing: which checkpoint is needed and how to make it."""
    from jobs.train.trainer import BEST

    ckpt_dir = Path(cfg.output) / "checkpoints" / cfg.task
    cache = cfg.cache_location
    return (
        f"lwaffect run needs a {cfg.task} checkpoint: pass --weights CKPT, a file made by `lwaffect train` "
        f"for task {cfg.task} on a cache of the same backbone. To make one from labelled data:\n"
        f"  lwaffect extract --input {cfg.input} --cache {cache} --split all\n"
        f"  lwaffect train --task {cfg.task} --input {cfg.input} --cache {cache} --output {ckpt_dir}\n"
        f"then run again with --weights {ckpt_dir / BEST}"
    )


def write_failures(rows: list[dict[str, str]], path: Path) -> None:
    """The failures table (video, subject, stage, reason), written atomically; empty when none."""
    write_table(path, pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA))


def check_config(cfg: RunConfig) -> None:
    """Usage errors that need no data: task, split, weights."""
    get_task(cfg.task)
    if cfg.split not in SPLITS:
        raise RunError(f"unknown split {cfg.split!r}; known splits: {', '.join(SPLITS)}")
    if cfg.weights is None:
        raise RunError(weights_needed(cfg))
    if not Path(cfg.weights).exists():
        raise RunError(f"{cfg.weights}: no such checkpoint.\n{weights_needed(cfg)}")
    from model.checkpoint import read_checkpoint_meta

    trained_for = read_checkpoint_meta(cfg.weights).get("task")  # refuse before extracting anything
    if trained_for != cfg.task:
        raise RunError(f"checkpoint {cfg.weights} is a {trained_for!r} model, not {cfg.task!r}: "
                       f"pass a checkpoint trained for {cfg.task!r}")  # fmt: skip


# ------------------------------------------------------------------------------------------------ stages


def extract_stage(cfg: RunConfig, subjects: list[str], say: Callable[[str], None]) -> Stage:
    """Extract the shards of `subjects` that the cache lacks; complete ones are reused."""
    from jobs.extract.config import ExtractConfig
    from jobs.extract.driver import extract
    from jobs.extract.runtime import RuntimeConfig

    started = time.perf_counter()
    report = extract(
        ExtractConfig(input=Path(cfg.input), cache=cfg.cache_location, split=cfg.split,
                      subjects=tuple(subjects), runtime=RuntimeConfig(address=cfg.address)),
        say=say,
    )  # fmt: skip
    note = f"{len(report.cached)} subjects extracted, {len(report.skipped)} reused from the cache"
    return Stage("extract", time.perf_counter() - started, int(report.frames), "frames", note)


def cache_failures(location: str, subjects: list[str]) -> list[dict[str, str]]:
    """Failures the cache recorded for `subjects`."""
    from pipeline.cache.read import open_cache

    wanted = set(subjects)
    rows = open_cache(location).failures().to_pylist()
    return [{k: str(r.get(k) or "") for k in FAILURES_SCHEMA.names} for r in rows if r["subject"] in wanted]


def submit_stage(
    cfg: RunConfig, catalogue: Any, predictions: Path
) -> tuple[Stage, Path | None, list[str], list[str]]:
    """Write and check the submission of the test split: (stage, file or None, problems, notes)."""
    from pipeline.submission.check import check_submission
    from pipeline.submission.read import frame_counts, read_predictions
    from pipeline.submission.write import SubmissionError, write_submission

    started = time.perf_counter()
    path = submission_path(cfg.output, cfg.task)
    table = read_predictions(predictions, cfg.task, catalogue)
    try:
        written = write_submission(cfg.task, table, catalogue, path)
    except SubmissionError as e:
        path.unlink(missing_ok=True)  # an older file would be mistaken for this run's
        return Stage("submit", time.perf_counter() - started, 0, "lines"), None, [str(e)], []
    problems = [str(p) for p in check_submission(cfg.task, path, catalogue, frame_counts(table) or None)]
    notes = written.notes()[1:]  # the first note repeats the path and line count
    return Stage("submit", time.perf_counter() - started, written.lines, "lines"), path, problems, notes


def metric_of(cfg: RunConfig, catalogue: Any, predictions: Path) -> str | None:
    """The official metric of the predictions on a labelled split, None where there are no labels."""
    from jobs.evaluate import EvaluateConfig, evaluate_predictions
    from pipeline.submission.read import PredictionsError

    try:
        cfg_eval = EvaluateConfig(cfg.task, predictions, cfg.input, cfg.split, allow_missing=True)
        result = evaluate_predictions(cfg_eval, catalogue).result
    except PredictionsError:
        return None
    return f"{result.metric}: {result.value:.4f}"


def run(cfg: RunConfig, say: Callable[[str], None] | None = None) -> RunReport:
    """Extract, predict, fill, write and check the submission; the report says what happened."""
    from pipeline.cache.read import CacheError
    from pipeline.datasets import load_catalogue

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    check_config(cfg)
    assert cfg.weights is not None
    catalogue = load_catalogue(cfg.input, strict=False)
    subjects = [s.name for s in catalogue.subjects_in(cfg.task, cfg.split)]
    if not subjects:
        raise RunError(
            f"{cfg.input} ({catalogue.layout} layout) has no {cfg.split} subjects for task {cfg.task}"
        )
    videos = len({catalogue.subjects[s].video for s in subjects})
    failures = [
        f for f, p in zip(catalogue.failures(), catalogue.errors, strict=True) if p.task in (None, cfg.task)
    ]
    say(f"{cfg.task}, {cfg.split} split: {len(subjects)} subjects in {videos} videos of {cfg.input}")

    say(f"[1/3] extract -> {cfg.cache_location}")
    try:
        extract_record = extract_stage(cfg, subjects, say)
        failures += cache_failures(cfg.cache_location, subjects)
    except CacheError as e:  # e.g. a cache made with other settings: the message says what to do
        raise RunError(str(e)) from None

    say(f"[2/3] predict -> {Path(cfg.output) / 'predictions'}")
    predicted: PredictReport = predict(
        PredictConfig(task=cfg.task, cache=cfg.cache_location, weights=Path(cfg.weights), output=cfg.output,
                      stride=cfg.stride, fill=cfg.fill, subjects=tuple(subjects), device=cfg.device),
        say=say,
    )  # fmt: skip
    listed = {f["subject"] for f in failures}
    failures += [
        {"video": catalogue.subjects[s].video, "subject": s, "stage": "predict",
         "reason": "no complete cache shard (extraction did not finish)"}
        for s in predicted.missing if s not in listed
    ]  # fmt: skip
    unit = "clips" if get_task(cfg.task).unit == "clip" else "frames"
    stages = [extract_record, Stage("predict", predicted.seconds, predicted.frames, unit)]

    report = RunReport(
        task=cfg.task, split=cfg.split, videos=videos, subjects=len(subjects), frames=predicted.frames,
        filled=predicted.filled, predictions=predicted.path, failures_path=Path(cfg.output) / FAILURES_FILE,
        failures=failures, stages=stages,
    )  # fmt: skip
    if cfg.split in ("test", "all") and catalogue.splits.get(cfg.task, {}).get("test"):
        say(f"[3/3] submit -> {submission_path(cfg.output, cfg.task)}")
        stage, report.submission, report.problems, report.notes = submit_stage(cfg, catalogue, predicted.path)
        stages.append(stage)
    else:
        say(f"[3/3] submit: skipped (submission files are for the test split, not {cfg.split})")
    if cfg.split != "test":
        report.metric = metric_of(cfg, catalogue, predicted.path)
    write_failures(failures, report.failures_path)
    return report
