"""The one `Predictor`: per-frame outputs of a temporal model over a subject's cached maps.

A `Predictor` holds what a prediction needs besides the maps: the model, its task, the window length and
stride, the AU / AH decision thresholds, how frames without a face are read and pooled (as in training:
`pipeline.temporal.windows.ShardReader.window` and `frame_mask`), the batch size and the device. `lwaffect predict` builds it from
a loaded checkpoint (`Predictor.from_checkpoint`, the one reader of the checkpoint's `seq_len`, `stride`
and `thresholds`; `checkpoint_meta` writes them), validation during training
(`pipeline.temporal.validate`) and the benchmark build it from their settings.

A frame task's subject is covered by windows of `seq_len` frames every `stride` frames, the last one
ending at the last frame (a subject shorter than `seq_len` is padded); each frame's output is the mean
over the windows that hold it. From a crop cache the windows hold crops, which `crops`
(`pipeline.temporal.crops.CropMaps`) makes into the maps, unaugmented. A clip task (EMI) sees one window sampled across the clip and gives one
output row, pooled over the frames with a face as in training. `raw` returns the averaged head outputs (pre-activation), `predict` the predictions (the task
table's activation, `model.heads.activate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from model.checkpoint import CheckpointError
from model.heads import activate
from model.tasks import TaskSpec, get_task
from pipeline.cache.spec import cache_differences
from pipeline.temporal.optim import autocast
from pipeline.temporal.windows import NO_FACE, NoFace, ShardReader, clip_rows, frame_mask


class Frames(NamedTuple):
    """Outputs of one subject's cached rows."""

    values: np.ndarray  # (N, out) float32 outputs; (1, out) for a clip task
    decode_index: np.ndarray  # (N,) int64 decode index of each cached row
    face: np.ndarray  # (N,) bool: the row has a detected face


def window_starts(num_frames: int, seq_len: int, stride: int) -> list[int]:
    """Starts of full prediction windows covering every frame; the last one ends at the last frame."""
    if num_frames <= seq_len:
        return [0]
    starts = list(range(0, num_frames - seq_len + 1, stride))
    if starts[-1] + seq_len < num_frames:
        starts.append(num_frames - seq_len)
    return starts


def default_stride(seq_len: int) -> int:
    """Frames between prediction windows when none is given: half a window."""
    return max(seq_len // 2, 1)


def activate_array(task: str | TaskSpec, outputs: np.ndarray) -> np.ndarray:
    """`model.heads.activate` of head outputs held in numpy (N, out): computed in float64, float32 out."""
    return activate(task, torch.from_numpy(np.asarray(outputs, np.float64))).numpy().astype(np.float32)


def thresholds_of(task: str, meta: Mapping[str, Any]) -> np.ndarray:
    """Decision thresholds (K,) of AU / AH from checkpoint metadata; 0.5 where none were tuned."""
    k = get_task(task).outputs
    recorded = meta.get("thresholds")
    if recorded is None:
        return np.full(k, 0.5)
    th = np.asarray(recorded, dtype=np.float64).ravel()
    if th.size == 1:
        th = np.full(k, float(th[0]))
    if th.shape != (k,):
        raise ValueError(f"checkpoint has {th.size} thresholds, task {task} needs {k}")
    return th


@dataclass(frozen=True)
class Predictor:
    """A temporal model with the settings of its prediction windows."""

    model: (
        nn.Module
    )  # maps ((B, T, C, H, W), ...) -> raw outputs (B, T, out); a clip task's (maps, mask) -> (B, out)
    task: str  # task name of the task table (va, au, expr, ah, emi)
    seq_len: int  # frames per window (T)
    stride: int  # frames between window starts
    thresholds: tuple[float, ...] | None = None  # AU / AH per-class decision thresholds; None: 0.5 each
    batch_size: int = 8  # windows per forward pass
    device: torch.device | str = "cpu"  # where the model runs
    bf16: bool = False  # bf16 autocast around the model
    no_face: NoFace = "hold"  # maps of faceless frames: the nearest face frame's in the window, or zeros
    include_no_face: bool = False  # a clip pools over its faceless frames too (as the model was trained)
    crops: Any = None  # a crop cache's: makes the maps from the crops (`pipeline.temporal.crops.CropMaps`)

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.no_face not in NO_FACE:
            raise ValueError(f"unknown no-face treatment {self.no_face!r}; use one of {', '.join(NO_FACE)}")
        if self.seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, got {self.seq_len}")
        if self.stride < 1:
            raise ValueError(f"stride must be at least 1, got {self.stride}")

    @classmethod
    def from_checkpoint(
        cls,
        model: nn.Module,
        meta: Mapping[str, Any],
        stride: int | None = None,
        batch_size: int = 8,
        device: torch.device | str = "cpu",
        bf16: bool = False,
    ) -> Predictor:
        """The predictor of a loaded checkpoint: its task, window, stride (unless `stride` overrides it),
        thresholds and no-face reading (zeros for a checkpoint that records none: it was trained on them);
        a ValueError says what in the metadata does not fit."""
        task = str(meta["task"])
        seq_len = int(meta.get("seq_len") or getattr(model, "num_frames", None) or 32)
        stride = int(stride or meta.get("stride") or default_stride(seq_len))
        thresholds = tuple(float(t) for t in thresholds_of(task, meta))
        no_face, include = meta.get("no_face", "zeros"), bool(meta.get("include_no_face", False))
        return cls(model, task, seq_len, stride, thresholds, batch_size, device, bf16, no_face, include)

    def checkpoint_meta(self) -> dict[str, Any]:
        """What a checkpoint records for `from_checkpoint`: task, window, stride, thresholds, no-face reading."""
        thresholds = list(self.thresholds) if self.thresholds is not None else None
        return {"task": self.task, "seq_len": self.seq_len, "stride": self.stride, "thresholds": thresholds,
                "no_face": self.no_face, "include_no_face": self.include_no_face}  # fmt: skip

    @property
    def spec(self) -> TaskSpec:
        return get_task(self.task)

    @property
    def decision_thresholds(self) -> np.ndarray:
        """(K,) float64 thresholds deciding AU / AH classes from probabilities."""
        if self.thresholds is None:
            return np.full(self.spec.outputs, 0.5)
        return np.asarray(self.thresholds, np.float64)

    def reader(self, cache: Any) -> ShardReader:
        """A block reader of `cache` sized for this predictor's windows."""
        return ShardReader(cache, block_rows=max(128, self.seq_len), cached_blocks=4)

    def predict(self, reader: ShardReader, subject: str) -> Frames:
        """Predictions of every cached row of `subject`: the activated `raw` outputs."""
        raw = self.raw(reader, subject)
        return raw._replace(values=activate_array(self.spec, raw.values))

    @torch.no_grad()
    def raw(self, reader: ShardReader, subject: str) -> Frames:
        """Head outputs (pre-activation) of every cached row of `subject`, overlapping windows averaged."""
        n = reader.num_frames(subject)
        if n == 0:
            raise ValueError(f"subject {subject!r} has no cached frames")
        model = self.model
        was_training = model.training
        model.eval()
        try:
            if self.spec.unit == "clip":
                return self._clip(reader, subject, n)
            return self._windows(reader, subject, n)
        finally:
            model.train(was_training)

    def _clip(self, reader: ShardReader, subject: str, n: int) -> Frames:
        """One window sampled across the clip, pooled over its frames with a face: outputs (1, out)."""
        seq_len, device = self.seq_len, self.device
        index, face = np.zeros(n, np.int64), np.zeros(n, bool)
        rows = clip_rows(n, seq_len)
        idx, fc, maps = reader.window(subject, rows, seq_len, self.no_face)  # (T, C, H, W) each
        index[rows], face[rows] = idx[: len(rows)], fc[: len(rows)]
        batch = tuple(torch.from_numpy(m)[None].to(device) for m in maps)  # (1, T, C, H, W)
        batch = self.crops(batch[0]) if self.crops is not None else batch  # crops -> maps, never augmented
        mask = frame_mask(len(rows), fc, self.include_no_face)  # (T,) as in training
        valid = torch.from_numpy(mask)[None].to(device)  # (1, T)
        with autocast(device, self.bf16):
            out = self.model(batch, valid)  # (1, out)
        return Frames(out.float().cpu().numpy(), index, face)

    def _windows(self, reader: ShardReader, subject: str, n: int) -> Frames:
        """Windows every `stride` frames, in batches; each row's outputs averaged over its windows."""
        seq_len = self.seq_len
        index, face = np.zeros(n, np.int64), np.zeros(n, bool)
        total: np.ndarray | None = None
        counts = np.zeros(n, np.float64)
        starts = window_starts(n, seq_len, self.stride)
        for b in range(0, len(starts), self.batch_size):
            chunk, spans = [], []
            for start in starts[b : b + self.batch_size]:
                rows = np.arange(start, min(start + seq_len, n))
                idx, fc, maps = reader.window(subject, rows, seq_len, self.no_face)
                index[rows], face[rows] = idx[: len(rows)], fc[: len(rows)]
                chunk.append(maps)
                spans.append(rows)
            batch = tuple(
                torch.from_numpy(np.stack(level)).to(self.device) for level in zip(*chunk, strict=True)
            )  # (B, T, C, H, W) per level
            if self.crops is not None:  # ((B, T, 3, S, S) uint8,) -> the maps, never augmented
                batch = self.crops(batch[0])
            with autocast(self.device, self.bf16):
                out = self.model(batch).float().cpu().numpy()  # (B, T, out)
            if total is None:
                total = np.zeros((n, out.shape[-1]), np.float64)
            for k, rows in enumerate(spans):
                total[rows] += out[k, : len(rows)]
                counts[rows] += 1
        assert total is not None
        return Frames((total / counts[:, None]).astype(np.float32), index, face)


def check_cache_spec(
    doc: Mapping[str, Any], cache_spec: Mapping[str, Any], where: str = "checkpoint"
) -> None:
    """Raise CheckpointError when a checkpoint's backbone (`doc`: its document) does not fit a cache spec."""
    diffs = cache_differences(doc["backbone"], cache_spec)
    if diffs:
        raise CheckpointError(
            f"{where} does not fit the feature cache (checkpoint vs cache): "
            + "; ".join(diffs)
            + ". Use a cache extracted with the checkpoint's backbone weights and settings, or retrain on this cache."
        )
