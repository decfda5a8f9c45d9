"""`lwaffect predict`: per-frame predictions of one task from a feature cache.

Loads a checkpoint (which must match the task and the cache's backbone) and the `Predictor` it records
(`pipeline.temporal.predictor`: window, stride, thresholds), predicts every cached frame of every subject
with overlapping windows averaged and activated (from a crop cache, the frozen part runs on the crops first:
`pipeline.temporal.crops`), decides AU / AH with the checkpoint's thresholds and EXPR
by the most probable class, fills frames without a face (`pipeline.fill`) and writes
`OUT/predictions/<task>.parquet` atomically. Schema: `video`, `subject`, `frame` (int32, 1-based), `face`,
`filled`, `reason` (why a row is filled: "no face", "failed video"; "" where predicted), then the task's
columns of the task table (`model.tasks`): VA `valence`, `arousal`; AU `p_AU*` and `AU*`; EXPR `p_<class>`
and `expression`; AH `p_ah`, `ah`. EMI (a clip task): `video`, `subject`, `reason` and its six intensities.

With `complete`, a subject without a complete cache shard (its video failed) still gets its rows: the
task's neutral value (`model.tasks`) on every frame the organiser example or the container counts
(`pipeline.submission.frames`), flagged `filled` with reason "failed video", so that a submission stays
complete.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from jobs.progress import current_display, progress_display
from model.tasks import get_task
from pipeline.fill import FillConfig, FillMethod, fill_predictions
from pipeline.io import atomic_path
from pipeline.temporal.predictor import Predictor, check_cache_spec

PREDICTIONS_DIR = "predictions"  # OUT/predictions/<task>.parquet
NO_FACE, FAILED_VIDEO = "no face", "failed video"  # values of the `reason` column of filled rows


class PredictError(ValueError):
    """Predictions cannot be made: a bad checkpoint, cache, split or subject list; the message says why."""


@dataclass(frozen=True)
class PredictConfig:
    """One prediction pass over a cache."""

    task: str  # va, au, expr, ah or emi
    cache: str  # feature cache made by `lwaffect extract` (folder or pyarrow filesystem URI)
    weights: Path  # checkpoint made by `lwaffect train`
    output: Path  # output folder; the predictions go to OUTPUT/predictions/<task>.parquet
    stride: int | None = None  # frames between window starts; None: the checkpoint's validation stride
    fill: FillMethod = "linear"  # frames without a face: "linear" interpolation or the "nearest" face frame
    split: str | None = None  # only the subjects of this split (needs `input`); None: every cached subject
    input: Path | None = None  # data set folder whose catalogue gives the split
    subjects: tuple[str, ...] | None = None  # exactly these subjects (overrides `split`)
    batch_size: int = 8  # windows per forward pass
    device: str = "cpu"  # cpu, cuda or cuda:N
    bf16: bool = False  # bf16 autocast around the model
    complete: bool = False  # subjects without a complete shard get neutral rows (needs `input` to count them)
    # the backbone weights file a crop cache was made with, where it is no longer at the path the cache
    # records (a crop cache runs the frozen part at prediction; a map cache does not need it)
    backbone_weights: str | None = None


@dataclass
class PredictReport:
    """What a prediction pass wrote."""

    task: str  # task name
    path: Path  # the predictions Parquet
    subjects: int  # subjects predicted
    videos: int  # videos they belong to
    frames: int  # rows written (clips for EMI)
    faces: int  # frames with a face
    filled: int  # frames without a face, filled
    seconds: float  # wall time of the prediction loop (model and cache reads)
    missing: list[str] = field(default_factory=list)  # subjects asked for that have no complete shard
    neutral: dict[str, int] = field(default_factory=dict)  # of those, subject -> neutral rows written
    uncounted: dict[str, str] = field(default_factory=dict)  # of those, subject -> why it has no rows

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def output_path(output: Path, task: str) -> Path:
    """Where the predictions of `task` are written under the output folder."""
    return Path(output) / PREDICTIONS_DIR / f"{task}.parquet"


# ------------------------------------------------------------------------------------------------- tables


def class_columns(task: str) -> tuple[list[str], list[str]]:
    """(probability columns, decision columns) of a class task from the task table; empty for VA and EMI."""
    spec = get_task(task)
    if spec.kind == "regression":
        return [], []
    return list(spec.probability_columns), list(spec.label_columns)


def subject_table(
    task: str,
    video: str,
    subject: str,
    frame: np.ndarray,
    face: np.ndarray,
    preds: np.ndarray,
    thresholds: np.ndarray,
) -> pl.DataFrame:
    """One subject's rows before filling: activated predictions (N, out) -> the Parquet schema.

    Clip tasks give one row with the intensities; frame tasks one row per frame, `filled` False.
    """
    spec = get_task(task)
    if spec.unit == "clip":
        data: dict[str, Any] = {"video": [video], "subject": [subject], "reason": [""]}
        data |= {name: pl.Series(name, preds[:1, k], pl.Float32) for k, name in enumerate(spec.header)}
        return pl.DataFrame(data)
    n = len(frame)
    data = {
        "video": pl.Series("video", [video] * n, pl.String),
        "subject": pl.Series("subject", [subject] * n, pl.String),
        "frame": pl.Series("frame", frame, pl.Int32),
        "face": pl.Series("face", face, pl.Boolean),
        "filled": pl.Series("filled", np.zeros(n, bool), pl.Boolean),
        "reason": pl.Series("reason", [""] * n, pl.String),
    }
    if spec.kind == "regression":
        data |= {c: pl.Series(c, preds[:, k], pl.Float32) for k, c in enumerate(spec.label_columns)}
        return pl.DataFrame(data)
    probs, decisions = class_columns(task)
    data |= {c: pl.Series(c, preds[:, k], pl.Float32) for k, c in enumerate(probs)}
    if spec.kind == "multiclass":
        classes = preds.argmax(axis=1)[:, None]  # (N, K) -> (N, 1)
    else:
        classes = preds >= thresholds  # (N, K) 0/1 decisions
    data |= {c: pl.Series(c, classes[:, k].astype(np.int8), pl.Int8) for k, c in enumerate(decisions)}
    return pl.DataFrame(data)


def neutral_table(task: str, video: str, subject: str, frames: int) -> pl.DataFrame:
    """Rows of a subject whose video failed: the task's neutral value on frames 1..`frames`, flagged."""
    spec = get_task(task)
    neutral = np.asarray(spec.neutral, np.float32)
    if spec.kind == "multiclass":  # one class -> its probability row (K,)
        neutral = np.eye(spec.outputs, dtype=np.float32)[int(neutral[0])]
    preds = np.broadcast_to(neutral, (frames, spec.outputs))  # (N, out)
    table = subject_table(task, video, subject, np.arange(1, frames + 1), np.zeros(frames, bool), preds,
                          np.full(spec.outputs, 0.5))  # fmt: skip
    if spec.unit == "clip":
        return table.with_columns(reason=pl.lit(FAILED_VIDEO))
    return table.with_columns(filled=pl.lit(True), reason=pl.lit(FAILED_VIDEO))


def empty_table(task: str) -> pl.DataFrame:
    """A predictions table of `task` without rows, with the full schema."""
    k = get_task(task).outputs
    one = subject_table(
        task, "", "", np.ones(1, np.int64), np.ones(1, bool), np.zeros((1, k)), np.full(k, 0.5)
    )
    return one.clear()


def write_predictions(table: pl.DataFrame, path: Path) -> None:
    """Write a predictions table to `path` under a temporary name, then rename it into place."""
    with atomic_path(path) as tmp:
        table.write_parquet(tmp)


# --------------------------------------------------------------------------------------------- prediction


def predict_subjects(
    predictor: Predictor,
    cache: Any,
    subjects: Sequence[str],
    fill: FillMethod = "linear",
    say: Callable[[str], None] = lambda line: None,
) -> pl.DataFrame:
    """Filled predictions of `subjects` (each with a complete shard in `cache`) as one table, in order."""
    task, thresholds = predictor.task, predictor.decision_thresholds
    reader = predictor.reader(cache)
    parts = []
    display = current_display(say)  # a bar over the frames of every subject; else a line per subject
    total = sum(cache.num_frames(s) for s in subjects)
    bar = display.bar(f"predict {task} 0/{len(subjects)}", total, "frames", keep=True)
    for i, subject in enumerate(subjects, 1):
        preds, index, face = predictor.predict(reader, subject)  # (N, out) values / probabilities
        parts.append(subject_table(task, cache.video(subject), subject, index + 1, face, preds, thresholds))
        bar.advance(len(index), label=f"predict {task} {i}/{len(subjects)}")
        if display.live is None:
            say(f"  predict {i}/{len(subjects)} {subject}: {len(index)} frames ({bar.rate:.0f} frames/s)")
    bar.close()
    table = pl.concat(parts) if parts else empty_table(task)
    if get_task(task).unit == "clip":
        return table
    filled = fill_predictions(table, task, FillConfig(method=fill), thresholds)
    reason = pl.when(pl.col("filled")).then(pl.lit(NO_FACE)).otherwise(pl.lit(""))
    return in_order(filled.with_columns(reason=reason), subjects)


def in_order(table: pl.DataFrame, subjects: Sequence[str]) -> pl.DataFrame:
    """The rows sorted by subject in the requested order, then by frame."""
    order = {s: k for k, s in enumerate(subjects)}
    keys = [pl.col("subject").replace_strict(order, return_dtype=pl.Int64)]
    return table.sort([*keys, "frame"] if "frame" in table.columns else keys)


def neutral_rows(
    cfg: PredictConfig, missing: list[str], report: PredictReport, say: Callable[[str], None]
) -> list[pl.DataFrame]:
    """Neutral rows of the subjects without a shard, where a frame count is known (recorded in `report`)."""
    from pipeline.datasets import load_catalogue
    from pipeline.submission.frames import FrameCounter

    if cfg.input is None:
        raise PredictError("complete predictions need --input, the data set folder that counts the frames")
    catalogue = load_catalogue(cfg.input, strict=False)
    counter, parts = FrameCounter(cfg.task, catalogue), []
    for subject in missing:
        frames, source = counter.count(subject)
        if frames is None:
            report.uncounted[subject] = source
            say(f"  {subject}: no predictions and no frame count ({source}): its lines are missing")
            continue
        report.neutral[subject] = frames
        parts.append(neutral_table(cfg.task, catalogue.subjects[subject].video, subject, frames))
        say(f"  {subject}: video failed, {frames} neutral rows ({source})")
    return parts


def load_model(weights: Path, task: str, cache: Any, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """The checkpoint's model and metadata, refused unless it was trained for `task` on `cache`'s maps."""
    from model.checkpoint import checkpoint_file, load_checkpoint

    try:
        model, meta = load_checkpoint(Path(weights), expect_task=task, device=device)
        check_cache_spec(meta, cache.spec, where=f"checkpoint {checkpoint_file(weights)}")
        return model, meta
    except (ValueError, OSError) as e:  # CheckpointError is a ValueError
        raise PredictError(str(e)) from None


def crop_maps(cfg: PredictConfig, spec: dict) -> Any:
    """What makes the maps from a crop cache's crops: the frozen part of the backbone it was made with
    (`cfg.backbone_weights` where given, which must be the file the cache was made with)."""
    from model.backbone import build_backbone
    from pipeline.cache.spec import cache_differences
    from pipeline.temporal.crops import CropMaps, cache_backbone

    try:
        backbone = build_backbone(cache_backbone(spec, cfg.backbone_weights, cfg.cache))
    except (ValueError, OSError) as e:
        raise PredictError(str(e)) from None
    diffs = cache_differences(backbone.spec(), spec)
    if diffs:
        raise PredictError(
            f"the backbone weights {cfg.backbone_weights} do not fit the crop cache {cfg.cache} (weights vs "
            f"cache): {'; '.join(diffs)}. Pass the file the cache was made with to --backbone-weights"
        )
    return CropMaps(backbone, cfg.device)


def select_subjects(cfg: PredictConfig, cached: Sequence[str]) -> tuple[list[str], list[str]]:
    """(subjects to predict, asked-for subjects without a complete shard) for `cfg`."""
    if cfg.subjects is not None:
        wanted = list(cfg.subjects)
    elif cfg.split is not None:
        if cfg.input is None:
            raise PredictError("--split needs --input, the data set folder whose catalogue lists the split")
        from pipeline.datasets import load_catalogue

        catalogue = load_catalogue(cfg.input)
        wanted = [s.name for s in catalogue.subjects_in(cfg.task, cfg.split)]
        if not wanted:
            raise PredictError(f"{cfg.input} has no {cfg.split} subjects for task {cfg.task}")
    else:
        return list(cached), []
    have = set(cached)
    return [s for s in wanted if s in have], [s for s in wanted if s not in have]


def predict(cfg: PredictConfig, say: Callable[[str], None] | None = None) -> PredictReport:
    """Predict every frame of the selected subjects and write OUTPUT/predictions/<task>.parquet."""
    from pipeline.cache.read import CacheError, open_cache

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    get_task(cfg.task)
    if cfg.fill not in ("linear", "nearest"):
        raise PredictError(f"unknown fill method {cfg.fill!r}; use linear or nearest")
    try:
        cache = open_cache(cfg.cache)
    except CacheError as e:
        raise PredictError(str(e)) from None
    model, meta = load_model(cfg.weights, cfg.task, cache, cfg.device)
    try:
        predictor = Predictor.from_checkpoint(model, meta, cfg.stride, cfg.batch_size, cfg.device, cfg.bf16)
    except ValueError as e:  # a stride below 1, thresholds that do not fit the task
        raise PredictError(str(e)) from None
    if getattr(cache, "kind", "maps") == "crops":
        predictor = replace(predictor, crops=crop_maps(cfg, cache.spec))
    subjects, missing = select_subjects(cfg, cache.subjects())
    if missing:
        say(f"{len(missing)} subjects have no complete cache shard and get no predictions: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")  # fmt: skip
    say(
        f"predict {cfg.task}: {len(subjects)} subjects, windows of {predictor.seq_len} frames every "
        f"{predictor.stride}"
    )
    started = time.perf_counter()
    with progress_display(say):
        table = predict_subjects(predictor, cache, subjects, cfg.fill, say)
    seconds = time.perf_counter() - started
    path = output_path(cfg.output, cfg.task)
    report = PredictReport(cfg.task, path, len(subjects), 0, 0, 0, 0, seconds, missing)
    if cfg.complete and missing:
        table = pl.concat([table, *neutral_rows(cfg, missing, report, say)], how="vertical")
        requested = list(cfg.subjects) if cfg.subjects is not None else [*subjects, *missing]
        table = in_order(table, requested)
    write_predictions(table, path)
    clip = get_task(cfg.task).unit == "clip"
    report.faces = len(table) - len(report.neutral) if clip else int(table["face"].sum())
    report.filled = int((table["reason"] != "").sum())
    report.frames, report.videos = len(table), table["video"].n_unique() if len(table) else 0
    report.subjects = len(subjects) + len(report.neutral)
    return report
