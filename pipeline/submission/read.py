"""Reading predictions into one table, and pairing them with the labels of a split.

A predictions file is either the Parquet that `predict` / `run` write (schema: contracts, "Predictions
Parquet") or an ABAW-format submission file (`predictions.txt`, or the EMI CSV). Both become one polars
table: `subject` (str), `frame` (int64, 1-based decode order; absent for EMI) and the task's submission
columns (`pipeline.submission.format.prediction_columns`): VA `valence`, `arousal`; AU `AU1..AU26` 0/1; EXPR
`expression`; AH `ah`; EMI the six intensities. Parquet files keep their other columns (`video`, `face`,
`filled`, probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from model.tasks import SPLIT_PARTS, get_task
from pipeline.datasets.catalogue import Catalogue
from pipeline.datasets.files import VIDEO_EXTENSIONS
from pipeline.submission.format import location_prefix, parse_location, prediction_columns, submission_header


class PredictionsError(ValueError):
    """A predictions file that cannot be read; the message names the file (and line) and the reason."""


def read_predictions(path: Path, task: str, catalogue: Catalogue | None = None) -> pl.DataFrame:
    """The predictions of `task` in `path` (Parquet, or an ABAW submission file) as the common table.

    `catalogue` maps AH image locations (video paths) back to subject names; without it, or for a location
    it does not know, the location's video path is the subject.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such predictions file")
    columns = prediction_columns(task)
    clip = get_task(task).unit == "clip"
    if path.suffix.lower() == ".parquet":
        try:
            table = pl.read_parquet(path)
        except Exception as e:  # pyarrow / polars raise several types for a broken file
            raise PredictionsError(f"{path}: cannot read Parquet: {e}") from None
        needed = ["subject", *([] if clip else ["frame"]), *columns]
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise PredictionsError(f"{path}: no {task} predictions: columns {', '.join(missing)} are missing")
        casts = [pl.col("subject").cast(pl.String), *([] if clip else [pl.col("frame").cast(pl.Int64)])]
        return table.with_columns(casts)
    return _read_text(path, task, catalogue)


def frame_counts(table: pl.DataFrame) -> dict[str, int]:
    """subject -> number of frames (the highest 1-based frame predicted) of a predictions table."""
    if "frame" not in table.columns:
        return {}
    counts = table.group_by("subject").agg(pl.col("frame").max())
    return dict(zip(counts["subject"].to_list(), counts["frame"].to_list(), strict=True))


def _read_text(path: Path, task: str, catalogue: Catalogue | None) -> pl.DataFrame:
    columns = prediction_columns(task)
    clip = get_task(task).unit == "clip"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PredictionsError(f"{path}: cannot read: {e}") from None
    header = submission_header(task)
    start = 1
    if lines and (header is not None or not lines[0].split(",", 1)[0].endswith(".jpg")):
        start = 2  # a header line (AH files have none, but tolerate one)
    subject_of: dict[str, str] = {}
    if task == "ah" and catalogue is not None:
        subject_of = {location_prefix(task, s, catalogue): s for s in catalogue.subjects}
    subjects: list[str] = []
    frames: list[int] = []
    values: list[list[float]] = []
    for number, line in enumerate(lines[start - 1 :], start=start):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(columns) + 1:
            raise PredictionsError(
                f"{path}, line {number}: {len(fields)} fields, expected {len(columns) + 1}"
            )
        try:
            row = [float(f) for f in fields[1:]]
        except ValueError:
            raise PredictionsError(f"{path}, line {number}: values are not numbers: {line!r}") from None
        if clip:  # a clip name, maybe with a folder or a video extension
            name = fields[0].rsplit("/", 1)[-1]
            stem, dot, ext = name.rpartition(".")
            subjects.append(stem if dot and f".{ext.lower()}" in VIDEO_EXTENSIONS else name)
        else:
            try:
                prefix, frame = parse_location(task, fields[0])
            except ValueError as e:
                raise PredictionsError(f"{path}, line {number}: {e}") from None
            subjects.append(subject_of.get(prefix, prefix))
            frames.append(frame)
        values.append(row)
    array = np.asarray(values, dtype=np.float64).reshape(len(values), len(columns))  # (n, K)
    data: dict[str, object] = {"subject": pl.Series(subjects, dtype=pl.String)}
    if not clip:
        data["frame"] = pl.Series(frames, dtype=pl.Int64)
    kind = get_task(task).kind
    for k, name in enumerate(columns):
        col = array[:, k]
        data[name] = pl.Series(col, dtype=pl.Float32) if kind == "regression" else _as_int(col, path, name)
    return pl.DataFrame(data)


def _as_int(values: np.ndarray, path: Path, name: str) -> pl.Series:
    if not np.isfinite(values).all() or (np.rint(values) != values).any():
        raise PredictionsError(f"{path}: {name} values must be integers")
    return pl.Series(name, values.astype(np.int64), dtype=pl.Int8)


# --------------------------------------------------------------------------------------------- pairing


@dataclass
class Paired:
    """Predictions and labels of a split, pooled over its subjects, ready for `pipeline.metrics`."""

    pred: np.ndarray  # (M, K) predictions of every labelled row (NaN where absent)
    labels: np.ndarray  # (M, K) label values
    mask: np.ndarray  # (M,) bool: label valid and prediction present
    subjects: list[str] = field(default_factory=list)  # subjects with labels that were paired
    missing: dict[str, list[int]] = field(
        default_factory=dict
    )  # subject -> valid 1-based frames not predicted
    missing_subjects: list[str] = field(default_factory=list)  # labelled subjects without any prediction
    unlabelled: list[str] = field(default_factory=list)  # subjects of the split that have no labels
    extra: int = 0  # predicted rows outside the labelled frames of the split's subjects

    @property
    def missing_count(self) -> int:
        """Valid labelled frames (clips) without a prediction."""
        return sum(len(f) for f in self.missing.values())


def pair_with_labels(task: str, table: pl.DataFrame, catalogue: Catalogue, split: str) -> Paired:
    """Pair a predictions table with the labels of `split`: label row i is 1-based frame i + 1.

    Clip tasks (EMI) pair one row per subject. Raises PredictionsError when the split has no labels.
    """
    spec = get_task(task)
    splits = catalogue.splits.get(task, {})
    if split == "all":  # every split's subjects, then any other labelled subject
        names = [s for name in SPLIT_PARTS for s in splits.get(name, [])]
        subjects = list(dict.fromkeys(names + sorted(s for (t, s) in catalogue.labels if t == task)))
    else:
        subjects = list(splits.get(split, []))
    labelled = [s for s in subjects if (task, s) in catalogue.labels]
    if not labelled:
        raise PredictionsError(f"no {task} labels for the {split} split ({len(subjects)} subjects in it)")
    columns = prediction_columns(task)
    groups = {str(k[0]): g for k, g in table.group_by("subject")}
    out = Paired(np.zeros((0, len(columns))), np.zeros((0, len(columns))), np.zeros(0, bool), labelled)
    out.unlabelled = [s for s in subjects if (task, s) not in catalogue.labels]
    preds, labels, masks = [], [], []
    for subject in labelled:
        lab = catalogue.labels[(task, subject)]
        values = np.asarray(lab.values, dtype=np.float64).reshape(len(lab.values), -1)  # (N, K)
        valid = np.asarray(lab.valid, dtype=bool)
        pred = np.full((len(values), len(columns)), np.nan)
        present = np.zeros(len(values), dtype=bool)
        group = groups.get(subject)
        if group is None:
            out.missing_subjects.append(subject)
        else:
            rows = np.zeros(len(group), np.int64) if spec.unit == "clip" else group["frame"].to_numpy() - 1
            inside = (rows >= 0) & (rows < len(values))
            out.extra += int((~inside).sum()) + (len(group) - 1 if spec.unit == "clip" else 0)
            pred[rows[inside]] = group.select(columns).to_numpy().astype(np.float64)[inside]
            present[rows[inside]] = True
        absent = valid & ~present
        if absent.any():
            out.missing[subject] = (np.flatnonzero(absent) + 1).tolist()
        preds.append(pred)
        labels.append(values)
        masks.append(valid & present)
    out.pred, out.labels, out.mask = np.concatenate(preds), np.concatenate(labels), np.concatenate(masks)
    return out
