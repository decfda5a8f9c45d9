"""Everything the report draws, gathered from the run record and the files it names (no HTML here).

Per subject: each task's predictions per frame (what a submission holds: VA values, AU and AH decisions,
the EXPR class; EMI one row per clip), the filled flags, the labels where the input has them (aligned
with the frames: label row i is 1-based frame i + 1, as `lwaffect evaluate` pairs them), the official
metric of the subject alone, and the face record of every frame from the feature cache (source and box).
Per video: its file, frame rate and subjects. Whatever can no longer be found (the input folder, a video,
the cache, a shard, a predictions file) becomes a note in the report instead of an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from jobs.report.record import RunRecord
from model.tasks import get_task
from pipeline.metrics import MetricError, compute_metric
from pipeline.submission.format import prediction_columns

Say = Callable[[str], None]


@dataclass
class TaskTrack:
    """One task's predictions of one subject."""

    task: str  # task name
    values: np.ndarray  # (N, K) per frame what a submission holds (clip tasks: (1, K)); NaN where absent
    filled: np.ndarray  # (N,) bool: filled (no face, or the video failed)
    failed: bool  # the subject's video failed: every row holds the task's neutral value
    labels: np.ndarray | None = None  # (N, K) labels aligned with `values`, NaN where invalid or absent
    metric: float | None = None  # the official metric of this subject alone (EMI: mean absolute error)
    metric_note: str = ""  # why there is no metric, where there is none


@dataclass
class FaceRecord:
    """The face record of every frame of a subject, from its cache shard."""

    source: np.ndarray  # (N,) str: one of pipeline.faces.track.SOURCES (detected ... none)
    box: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 in pixels of the full frame (NaN where unknown)


@dataclass
class SubjectData:
    """One subject: its tracks per task and its face record."""

    name: str  # subject name
    video: str  # its video
    position: str  # main, left or right
    frames: int  # frames predicted (1 for a clip task)
    tasks: dict[str, TaskTrack] = field(default_factory=dict)  # by task, in the run's order
    faces: FaceRecord | None = None  # None where the cache has no complete shard
    notes: list[str] = field(default_factory=list)  # what could not be shown, and why

    @property
    def filled_share(self) -> float:
        """Share of the frames filled (of the first frame task; 0 for clip tasks)."""
        frame = [t for t in self.tasks.values() if get_task(t.task).unit == "frame"]
        return float(frame[0].filled.mean()) if frame and len(frame[0].filled) else 0.0


@dataclass
class VideoData:
    """One video of the run."""

    name: str  # video name
    path: Path | None  # the file, where known
    fps: float | None  # frame rate, where known (else the timelines count frames)
    subjects: list[str] = field(default_factory=list)  # its subjects in the report, left before right
    missing: str = ""  # why its frames cannot be decoded for thumbnails ("" where they can)


@dataclass
class ReportData:
    """What the report shows."""

    record: RunRecord  # the run record
    videos: dict[str, VideoData]  # in the order of the predictions
    subjects: dict[str, SubjectData]  # in the order of the predictions
    notes: list[str] = field(default_factory=list)  # run-wide notes (input or cache not found, ...)
    labelled: bool = False  # some subject has labels


def metric_higher_is_better(task: str) -> bool:
    """Whether a larger per-subject metric is better (every official one; EMI's per-clip error is not)."""
    return get_task(task).unit != "clip"


def subject_metric(task: str, values: np.ndarray, labels: np.ndarray) -> tuple[float | None, str]:
    """(metric, note) of one subject: the official metric on its labelled frames; EMI the mean absolute
    error of its clip (a Pearson r needs several clips)."""
    present = ~np.isnan(labels).any(axis=1) & ~np.isnan(values).any(axis=1)
    if not present.any():
        return None, "no valid labels"
    if get_task(task).unit == "clip":
        return float(np.abs(values[present] - labels[present]).mean()), ""
    pred, lab = values[present], labels[present]
    if get_task(task).kind in ("multiclass", "binary"):
        pred, lab = pred[:, 0], lab[:, 0]
    try:
        return float(compute_metric(task, pred, lab).value), ""
    except MetricError as e:
        return None, str(e)


def _catalogue(record: RunRecord, notes: list[str]) -> Any:
    from pipeline.datasets import load_catalogue

    if record.input is None or not record.input.is_dir():
        notes.append(f"the input folder {record.input} can no longer be found: no labels are shown")
        return None
    try:
        return load_catalogue(record.input, strict=False)
    except (ValueError, OSError) as e:
        notes.append(f"the input folder {record.input} cannot be read ({e}): no labels are shown")
        return None


def _cache(record: RunRecord, notes: list[str]) -> Any:
    from pipeline.cache.read import CacheError, open_cache

    try:
        return open_cache(str(record.cache))
    except (CacheError, OSError) as e:
        notes.append(f"the feature cache {record.cache} cannot be opened ({e}): no face records are shown")
        return None


def _tables(record: RunRecord, notes: list[str]) -> dict[str, pl.DataFrame]:
    tables = {}
    for task in record.tasks:
        path = record.predictions.get(task)
        if path is None or not Path(path).is_file():
            notes.append(f"{task}: the predictions {path} can no longer be found")
            continue
        tables[task] = pl.read_parquet(path)
    return tables


def task_track(task: str, rows: pl.DataFrame, frames: int, labels: Any) -> TaskTrack:
    """The track of one subject's `rows` of a predictions table, on frames 1..`frames`."""
    from jobs.predict import FAILED_VIDEO

    spec, columns = get_task(task), prediction_columns(task)
    clip = spec.unit == "clip"
    n = 1 if clip else frames
    index = np.zeros(1, np.int64) if clip else rows["frame"].to_numpy().astype(np.int64) - 1
    values = np.full((n, len(columns)), np.nan)
    values[index] = rows.select(columns).to_numpy().astype(np.float64)  # (rows, K)
    filled = np.zeros(n, bool)
    if "filled" in rows.columns:
        filled[index] = rows["filled"].to_numpy()
    failed = "reason" in rows.columns and bool((rows["reason"] == FAILED_VIDEO).all())
    track = TaskTrack(task, values, filled, failed)
    if labels is None:
        track.metric_note = "no labels"
        return track
    lab = np.asarray(labels.values, np.float64).reshape(len(labels.values), -1)  # (L, K)
    aligned = np.full_like(values, np.nan)
    rows_shared = min(len(lab), n)
    aligned[:rows_shared] = np.where(np.asarray(labels.valid)[:rows_shared, None], lab[:rows_shared], np.nan)
    track.labels = aligned
    track.metric, track.metric_note = subject_metric(task, values, aligned)
    return track


def _faces(cache: Any, subject: str, frames: int) -> tuple[FaceRecord | None, str]:
    if cache is None:
        return None, ""
    if subject not in set(cache.subjects()):
        return None, "no complete cache shard: no face record"
    shard = cache.read(subject, maps=False)
    source = np.full(frames, "none", dtype=object)
    box = np.full((frames, 4), np.nan, np.float32)
    inside = shard.index < frames
    source[shard.index[inside]] = shard.source[inside]
    box[shard.index[inside]] = shard.box[inside]
    box[source == "none"] = np.nan
    return FaceRecord(source, box), ""


def _video(name: str, record: RunRecord, catalogue: Any) -> VideoData:
    entry = record.videos.get(name) or {}
    path = Path(entry["path"]) if entry.get("path") else None
    fps = entry.get("fps")
    if catalogue is not None and name in catalogue.videos:
        path = path or catalogue.videos[name].path
        if fps is None:
            try:
                fps = catalogue.video_info(name).fps or None
            except (ValueError, OSError, RuntimeError):
                fps = None
    video = VideoData(name, path, float(fps) if fps else None)
    if path is None:
        video.missing = "its file is not recorded"
    elif not path.is_file():
        video.missing = f"{path} can no longer be found"
    return video


def gather(record: RunRecord, say: Say = lambda line: None) -> ReportData:
    """Everything the report of `record` shows."""
    notes: list[str] = []
    catalogue, tables = _catalogue(record, notes), _tables(record, notes)
    cache = _cache(record, notes) if record.cache else None
    order: dict[str, str] = {}  # subject -> video, in the order of the predictions
    for table in tables.values():
        for subject, video in table.select("subject", "video").unique(maintain_order=True).iter_rows():
            order.setdefault(subject, video)
    data = ReportData(record, {}, {}, notes)
    parts = {
        task: {k[0]: g for k, g in t.partition_by("subject", as_dict=True).items()}
        for task, t in tables.items()
    }
    empty = {task: t.clear() for task, t in tables.items()}
    for subject, video in order.items():
        position = (
            catalogue.subjects[subject].position
            if catalogue and subject in catalogue.subjects
            else next((p for p in ("left", "right") if subject.endswith(f"_{p}")), "main")
        )
        mine = {task: parts[task].get(subject, empty[task]) for task in tables}
        frames = max(
            (int(np.max(r["frame"].to_numpy())) for r in mine.values() if "frame" in r.columns and len(r)),
            default=0,
        )
        if not frames:  # a clip task: the frames of its shard, for the face-record strip
            frames = (
                cache.num_frames(subject) if cache is not None and subject in set(cache.subjects()) else 1
            )
        item = SubjectData(subject, video, position, frames)
        for task, rows in mine.items():
            if len(rows):
                labels = catalogue.labels.get((task, subject)) if catalogue is not None else None
                item.tasks[task] = task_track(task, rows, frames, labels)
                data.labelled |= labels is not None
        item.faces, note = _faces(cache, subject, frames)
        item.notes += [note] if note else []
        data.subjects[subject] = item
        if video not in data.videos:
            data.videos[video] = _video(video, record, catalogue)
        data.videos[video].subjects.append(subject)
    for video in data.videos.values():  # left before right
        video.subjects.sort(
            key=lambda s: {"left": 0, "main": 1, "right": 2}.get(data.subjects[s].position, 1)
        )
    say(f"[report] {len(data.subjects)} subjects in {len(data.videos)} videos")
    return data
