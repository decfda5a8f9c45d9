"""`lwaffect run`: from a folder of videos to predictions and checked submission files in one call.

Stages: read the catalogue; extract the feature cache of every subject the tasks need, once for all tasks
(reusing and completing an existing cache); per task, take the checkpoint given with --weights or train one
on the labelled train and validation subjects (`jobs.run.checkpoints`); predict every frame with
overlapping windows averaged and fill frames without a face (`jobs.predict`); write the challenge
submission of the test split (`pipeline.submission.write`) and check it (`pipeline.submission.check`).
Bad inputs do not stop the run: each one is listed in OUT/failures.parquet and OUT/run.json and makes the
exit status 2. The run ends with a summary per task, OUT/run.json and the HTML report OUT/report.html
(`jobs.report`), whose path run.json records.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.predict import PredictConfig, PredictReport, predict
from jobs.progress import progress_display
from jobs.run.checkpoints import backbone_cut, given_weights, model_for, weights_needed
from jobs.run.config import ALL_TASKS, RunConfig, RunError
from jobs.run.report import FAILURES_FILE, RunReport, Stage, TaskModel, TaskReport, submission_path
from model.tasks import SPLITS, TASKS, get_task
from pipeline.cache.schema import FAILURES_SCHEMA
from pipeline.io import write_table, write_text

Say = Callable[[str], None]


def check_config(cfg: RunConfig) -> None:
    """Usage errors that need no data: task and split names, weights files and their tasks."""
    if cfg.split not in SPLITS:
        raise RunError(f"unknown split {cfg.split!r}; known splits: {', '.join(SPLITS)}")
    if not cfg.tasks:
        raise RunError(f"no task given; known tasks: {', '.join(TASKS)} or {ALL_TASKS}")
    if cfg.tasks != (ALL_TASKS,):
        for task in cfg.tasks:
            get_task(task)
        given_weights(cfg, list(cfg.tasks))  # refuse a wrong checkpoint before extracting anything


def labelled(catalogue: Any, task: str) -> bool:
    """Whether the input has labelled train and validation subjects of `task` (so a model can be trained)."""
    return all(
        any((task, s.name) in catalogue.labels for s in catalogue.subjects_in(task, split))
        for split in ("train", "validation")
    )


def resolve_tasks(cfg: RunConfig, catalogue: Any) -> list[str]:
    """The tasks of the run: those asked for, or for `all` every task the input has labels for."""
    if cfg.tasks != (ALL_TASKS,):
        return list(dict.fromkeys(cfg.tasks))
    tasks = [t for t in catalogue.tasks() if labelled(catalogue, t)]
    if not tasks:
        raise RunError(f"--task all: {cfg.input} ({catalogue.layout} layout) has labels for no task; name the "
                       f"task and pass --weights")  # fmt: skip
    return tasks


def needed_subjects(cfg: RunConfig, catalogue: Any, task: str, train: bool) -> list[str]:
    """Subjects of `task` to extract: the split predicted, plus train and validation where it trains."""
    splits = [cfg.split] + (["train", "validation"] if train else [])
    return list(dict.fromkeys(s.name for split in splits for s in catalogue.subjects_in(task, split)))


# ------------------------------------------------------------------------------------------------ stages


def extract_stage(cfg: RunConfig, subjects: list[str], say: Say, ray_start: Any = None) -> Stage:
    """Extract the shards of `subjects` that the cache lacks; complete ones are reused. `ray_start`: Ray
    begun early (`jobs.extract.runtime.RayStart`), stopped here once the extraction is done."""
    from jobs.extract.config import ExtractConfig, sized
    from jobs.extract.driver import extract
    from jobs.extract.runtime import RuntimeConfig

    started = time.perf_counter()
    n, size = backbone_cut(cfg)  # the flags', else the recipe's
    faces, backbone = sized(trainable_blocks=n, input_size=size)
    runtime = RuntimeConfig(address=cfg.address, worker_logs=cfg.worker_logs)
    try:
        report = extract(
            ExtractConfig(input=Path(cfg.input), cache=cfg.cache_location, split="all", faces=faces,
                          backbone=backbone, subjects=tuple(subjects), runtime=runtime, cache_kind=cfg.cache_kind),
            say=say, ray_start=ray_start,
        )  # fmt: skip
    finally:
        if ray_start is not None:
            ray_start.close()  # training and prediction need no Ray
    note = f"{len(report.cached)} subjects extracted, {len(report.skipped)} reused from the cache"
    parts = {name: {"items": t.frames, "seconds": t.seconds} for name, t in report.stages.items() if t.frames}
    return Stage("extract", time.perf_counter() - started, int(report.frames), "frames", note, parts=parts)


def cache_failures(location: str) -> list[dict[str, str]]:
    """Failures the cache recorded."""
    from pipeline.cache.read import open_cache

    return [
        {k: str(r.get(k) or "") for k in FAILURES_SCHEMA.names}
        for r in open_cache(location).failures().to_pylist()
    ]


def submit_stage(
    cfg: RunConfig, task: str, catalogue: Any, predictions: Path
) -> tuple[Stage, Path | None, list[str], list[str]]:
    """Write and check the submission of the test split: (stage, file or None, problems, notes)."""
    from pipeline.submission.check import check_submission
    from pipeline.submission.read import frame_counts, read_predictions
    from pipeline.submission.write import SubmissionError, write_submission

    started = time.perf_counter()
    path = submission_path(cfg.output, task)
    table = read_predictions(predictions, task, catalogue)
    try:
        written = write_submission(task, table, catalogue, path)
    except SubmissionError as e:
        path.unlink(missing_ok=True)  # an older file would be mistaken for this run's
        return Stage("submit", time.perf_counter() - started, 0, "lines", task=task), None, [str(e)], []
    problems = [str(p) for p in check_submission(task, path, catalogue, frame_counts(table) or None)]
    notes = written.notes()[1:]  # the first note repeats the path and line count
    return (
        Stage("submit", time.perf_counter() - started, written.lines, "lines", task=task),
        path,
        problems,
        notes,
    )


def metric_of(cfg: RunConfig, task: str, catalogue: Any, predictions: Path) -> str | None:
    """The official metric of the predictions on a labelled split, None where there are no labels."""
    from jobs.evaluate import EvaluateConfig, evaluate_predictions
    from pipeline.submission.read import PredictionsError

    try:
        cfg_eval = EvaluateConfig(task, predictions, cfg.input, cfg.split, allow_missing=True)
        result = evaluate_predictions(cfg_eval, catalogue).result
    except PredictionsError:
        return None
    return f"{result.metric}: {result.value:.4f}"


def task_stage(
    cfg: RunConfig, task: str, model: TaskModel, catalogue: Any, failures: list[dict[str, str]], say: Say
) -> TaskReport:
    """Predict, fill, submit and score one task with its model."""
    subjects = [s.name for s in catalogue.subjects_in(task, cfg.split)]
    say(f"[{task}] predict -> {Path(cfg.output) / 'predictions'}")
    predicted: PredictReport = predict(
        PredictConfig(task=task, cache=cfg.cache_location, weights=model.path, output=cfg.output,
                      stride=cfg.stride, fill=cfg.fill, subjects=tuple(subjects), device=cfg.device,
                      input=Path(cfg.input), complete=True,
                      backbone_weights=dict(cfg.train_options).get("backbone_weights")),
        say=say,
    )  # fmt: skip
    mine = [f for f in failures if f["subject"] in set(subjects) or f.get("task") == task]
    listed = {f["subject"] for f in mine}
    for s in predicted.missing:
        if s not in listed:
            row = {"video": catalogue.subjects[s].video, "subject": s, "stage": "predict", "task": task,
                   "reason": "no complete cache shard (extraction did not finish)"}  # fmt: skip
            failures.append(row)
            mine.append(row)
    unit = "clips" if get_task(task).unit == "clip" else "frames"
    report = TaskReport(
        task=task, split=cfg.split, videos=len({catalogue.subjects[s].video for s in subjects}),
        subjects=len(subjects), frames=predicted.frames, filled=predicted.filled, predictions=predicted.path,
        failures_path=Path(cfg.output) / FAILURES_FILE, failures=mine,
        stages=[Stage("predict", predicted.seconds, predicted.frames, unit, task=task)], model=model,
    )  # fmt: skip
    report.notes += [
        f"{s}: neutral values on its {n} lines (its video failed)" for s, n in predicted.neutral.items()
    ]
    report.notes += [
        f"{s}: its lines are missing from the submission: {why}" for s, why in predicted.uncounted.items()
    ]
    if cfg.split in ("test", "all") and catalogue.splits.get(task, {}).get("test"):
        say(f"[{task}] submit -> {submission_path(cfg.output, task)}")
        stage, report.submission, report.problems, notes = submit_stage(cfg, task, catalogue, predicted.path)
        report.stages.append(stage)
        report.notes += notes
    else:
        say(f"[{task}] submit: skipped (submission files are for the test split, not {cfg.split})")
    if cfg.split != "test":
        report.metric = metric_of(cfg, task, catalogue, predicted.path)
    return report


def given_model(task: str, path: Path) -> TaskModel:
    from model.checkpoint import read_checkpoint_meta
    from model.weights import file_hash

    meta = read_checkpoint_meta(path)
    return TaskModel(task=task, path=Path(path), source="given", train_config=meta.get("train_config"),
                     metric=meta.get("metric"), epoch=meta.get("epoch"), sha256=file_hash(path, length=64))  # fmt: skip


def run(cfg: RunConfig, say: Say | None = None, ray_start: Any = None) -> RunReport:
    """Extract once, then per task take or train a model, predict, fill, write and check the submission.

    `ray_start`: Ray begun by the caller while this loads (`jobs.extract.runtime.RayStart`); the extraction
    uses it and stops it when done."""
    from pipeline.cache.read import CacheError, open_cache
    from pipeline.datasets import load_catalogue

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    check_config(cfg)
    catalogue = load_catalogue(cfg.input, strict=False)
    tasks = resolve_tasks(cfg, catalogue)
    given = given_weights(cfg, tasks)
    for task in tasks:
        if task not in given and not labelled(catalogue, task):
            raise RunError(weights_needed(cfg, task, f" (the input has no {task} labels to train one on)"))
        if not catalogue.subjects_in(task, cfg.split):
            raise RunError(
                f"{cfg.input} ({catalogue.layout} layout) has no {cfg.split} subjects for task {task}"
            )
    report = RunReport(
        input=Path(cfg.input), cache=cfg.cache_location, output=Path(cfg.output), split=cfg.split
    )
    report.failures = [
        {**f, "task": p.task or ""} for f, p in zip(catalogue.failures(), catalogue.errors, strict=True)
        if p.task in (None, *tasks)
    ]  # fmt: skip
    wanted = {t: needed_subjects(cfg, catalogue, t, t not in given) for t in tasks}
    subjects = list(dict.fromkeys(s for names in wanted.values() for s in names))
    videos = len({catalogue.subjects[s].video for s in subjects})
    say(f"{', '.join(tasks)}, {cfg.split} split: {len(subjects)} subjects in {videos} videos of {cfg.input}")

    with progress_display(say) as display:  # one bar over the stages; extract, train, predict add theirs
        steps = 1 + sum(2 if t in given else 3 for t in tasks) + (1 if cfg.report else 0)
        bar = display.bar("run: extract", steps, "stages", keep=True)
        say(f"[extract] -> {cfg.cache_location}")
        try:
            report.stages.append(extract_stage(cfg, subjects, say, ray_start))
            spec = dict(open_cache(cfg.cache_location).spec)
        except CacheError as e:  # e.g. a cache made with other settings: the message says what to do
            raise RunError(str(e)) from None
        for row in cache_failures(cfg.cache_location):
            tagged = [t for t in tasks if row["subject"] in wanted[t]]
            report.failures += [{**row, "task": t} for t in tagged]
        for task in tasks:
            bar.advance(1, label=f"run: {task}")
            report.tasks.append(run_task(cfg, task, given, spec, catalogue, report.failures, say))
            bar.advance(1 if task in given else 2)
        report.videos = video_record(
            catalogue, [s for t in tasks for s in catalogue.subjects_in(t, cfg.split)]
        )
        _write_failures(report)
        report.write(write_text)
        if cfg.report:
            bar.advance(0, label="run: report")
            write_html_report(report, say)
            bar.advance(1)
        bar.close()
    return report


def run_task(cfg: RunConfig, task: str, given: dict[str, Path], spec: dict, catalogue: Any,
             failures: list[dict[str, str]], say: Say) -> TaskReport:  # fmt: skip
    """One task of the run: its model (given, reused or trained here), then predict, submit and score."""
    started, stages = time.perf_counter(), []
    if task in given:
        model = given_model(task, given[task])
    else:
        say(f"[{task}] train -> {cfg.checkpoint_dir(task)}")
        model = model_for(cfg, task, spec, say)
        note = f"{model.source}: {model.path}"
        stages.append(Stage("train", time.perf_counter() - started, 0, "frames", note, task=task))
    result = task_stage(cfg, task, model, catalogue, failures, say)
    result.stages[:0] = stages
    return result


def video_record(catalogue: Any, subjects: list[Any]) -> dict[str, dict[str, Any]]:
    """Path, frame rate and frame count of the videos of `subjects` (None where the probe fails)."""
    from pipeline.video.probe import VideoError

    videos: dict[str, dict[str, Any]] = {}
    for video in dict.fromkeys(s.video for s in subjects):
        entry: dict[str, Any] = {"path": str(catalogue.videos[video].path), "fps": None, "frames": None}
        try:
            info = catalogue.video_info(video)
            entry |= {"fps": info.fps or None, "frames": info.frame_count or None}
        except (VideoError, OSError) as e:
            entry["error"] = str(e)
        videos[video] = entry
    return videos


def write_html_report(report: RunReport, say: Say) -> None:
    """OUT/report.html from OUT/run.json; a report that cannot be written is said, not a failed run."""
    from jobs.report import ReportConfig, ReportError, write_report

    started = time.perf_counter()
    try:
        written = write_report(ReportConfig(run=Path(report.output)), say=say)
    except (ReportError, OSError, ValueError) as e:
        report.report_error = str(e)
        say(f"[report] not written: {e}")
    else:
        report.report = written.path
        report.stages.append(Stage("report", time.perf_counter() - started, written.videos, "videos",
                                   f"{written.bytes / 2**20:.1f} MiB"))  # fmt: skip
    report.write(write_text)


def _write_failures(report: RunReport) -> None:
    """OUT/failures.parquet: one row per failed input (the task column is in run.json)."""
    import pyarrow as pa

    rows = list({tuple(f[k] for k in FAILURES_SCHEMA.names): None for f in report.failures})
    table = pa.Table.from_pylist(
        [dict(zip(FAILURES_SCHEMA.names, r, strict=True)) for r in rows], schema=FAILURES_SCHEMA
    )
    path = Path(report.output) / FAILURES_FILE
    write_table(path, table)
