"""Training and evaluation steps of the temporal model on cached maps.

One optimiser step over a batch of windows (bf16 autocast optional, gradient clipping), the warm-up +
cosine learning-rate schedule, an exponential moving average of the weights, and per-frame prediction of a
whole subject with overlapping windows averaged (`predict_subject`, shared with `lwaffect predict`).
Validation scores the official metric (`pipeline.metrics`) over all valid frames of all validation subjects
pooled, after filling frames without a face the way the submission does, and tunes AU / AH thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from model.tasks import get_task
from pipeline.fill import fill_values
from pipeline.metrics import MetricResult, compute_metric, tune_thresholds
from pipeline.temporal.windows import ShardReader, clip_rows, label_rows, pad_rows

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]  # maps, targets, mask


# ------------------------------------------------------------------------------------------- optimisation


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.01) -> float:
    """Learning-rate multiplier at `step`: linear warm-up to 1, then cosine decay to `min_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_ratio: float = 0.01
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + cosine schedule, stepped once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, min_ratio)
    )


class EMA:
    """Exponential moving average of a model's floating-point weights and buffers."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1.0 - self.decay)
            else:
                self.shadow[k].copy_(v)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model with the averaged weights loaded, its own weights restored afterwards."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(backup)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    maps, targets, mask = batch
    return tuple(m.to(device, non_blocking=True) for m in maps), targets.to(device), mask.to(device)


def autocast(device: torch.device | str, enabled: bool) -> Any:
    """bf16 autocast on the model's device type (a no-op context when disabled)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def train_step(
    model: nn.Module,
    batch: Batch,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = 1.0,
    bf16: bool = False,
    device: torch.device | str = "cpu",
) -> float | None:
    """One optimiser step on a batch of windows; the loss, or None when the batch has no valid frame."""
    maps, targets, mask = to_device(batch, device)
    if not bool(mask.any()):
        return None
    model.train()
    clip = targets.ndim == 2  # clip task: targets (B, K), one output per window
    with autocast(device, bf16):
        # (B, T, C, H, W) maps -> (B, T, out); a clip task pools its valid frames -> (B, out)
        outputs = model(maps, mask) if clip else model(maps)
    loss = loss_fn(outputs.float(), targets, mask.any(dim=1) if clip else mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())


# --------------------------------------------------------------------------------------------- prediction


def window_starts(num_frames: int, seq_len: int, stride: int) -> list[int]:
    """Starts of full prediction windows covering every frame; the last one ends at the last frame."""
    if num_frames <= seq_len:
        return [0]
    starts = list(range(0, num_frames - seq_len + 1, stride))
    if starts[-1] + seq_len < num_frames:
        starts.append(num_frames - seq_len)
    return starts


def _is_clip_model(model: nn.Module) -> bool:
    task = getattr(model, "task", None)
    name = getattr(task, "name", task)
    return isinstance(name, str) and get_task(name).unit == "clip"


@torch.no_grad()
def predict_rows(
    model: nn.Module,
    reader: ShardReader,
    subject: str,
    seq_len: int,
    stride: int,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    bf16: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs (N, out) (clip models: (1, out)), decode index (N,) and face (N,) of one subject."""
    n = reader.num_frames(subject)
    if n == 0:
        raise ValueError(f"subject {subject!r} has no cached frames")
    was_training = model.training
    model.eval()
    index, face = np.zeros(n, np.int64), np.zeros(n, bool)
    try:
        if _is_clip_model(model):
            rows = clip_rows(n, seq_len)
            idx, fc, maps = reader.rows(subject, pad_rows(rows, seq_len))  # (T, C, H, W) each
            index[rows], face[rows] = idx[: len(rows)], fc[: len(rows)]
            batch = tuple(torch.from_numpy(m)[None].to(device) for m in maps)  # (1, T, C, H, W)
            valid = torch.from_numpy(np.arange(seq_len) < len(rows))[None].to(device)  # (1, T)
            with autocast(device, bf16):
                out = model(batch, valid)  # (1, out)
            return out.float().cpu().numpy(), index, face
        total: np.ndarray | None = None
        counts = np.zeros(n, np.float64)
        starts = window_starts(n, seq_len, stride)
        for b in range(0, len(starts), batch_size):
            chunk, spans = [], []
            for start in starts[b : b + batch_size]:
                rows = np.arange(start, min(start + seq_len, n))
                idx, fc, maps = reader.rows(subject, pad_rows(rows, seq_len))
                index[rows], face[rows] = idx[: len(rows)], fc[: len(rows)]
                chunk.append(maps)
                spans.append(rows)
            batch = tuple(torch.from_numpy(np.stack(level)).to(device) for level in zip(*chunk, strict=True))
            with autocast(device, bf16):
                out = model(batch).float().cpu().numpy()  # (B, T, out)
            if total is None:
                total = np.zeros((n, out.shape[-1]), np.float64)
            for k, rows in enumerate(spans):
                total[rows] += out[k, : len(rows)]
                counts[rows] += 1
        assert total is not None
        return (total / counts[:, None]).astype(np.float32), index, face
    finally:
        model.train(was_training)


def predict_subject(
    model: nn.Module,
    cache: Any,
    subject: str,
    seq_len: int,
    stride: int,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    bf16: bool = False,
) -> np.ndarray:
    """Raw head outputs of every cached frame of `subject`: (N, out), overlapping windows averaged.

    Windows of `seq_len` frames every `stride` frames, the last one ending at the last frame (a subject
    shorter than `seq_len` is padded); each frame's output is the mean over the windows that contain it.
    A clip model (EMI) sees one window sampled across the clip and gives (1, out). Outputs are
    pre-activation; `activate` maps them to predictions.
    """
    reader = ShardReader(cache, block_rows=max(128, seq_len), cached_blocks=4)
    return predict_rows(model, reader, subject, seq_len, stride, batch_size, device, bf16)[0]


def activate(task: str, outputs: np.ndarray) -> np.ndarray:
    """Head outputs (N, out) -> predictions: tanh values, sigmoid or softmax probabilities."""
    kind = get_task(task).activation
    x = np.asarray(outputs, np.float64)
    if kind == "tanh":
        y = np.tanh(x)
    elif kind == "sigmoid":
        y = 1.0 / (1.0 + np.exp(-x))
    else:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
    return y.astype(np.float32)


# --------------------------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Validation:
    """The official metric of one validation pass."""

    result: MetricResult  # the metric (with tuned thresholds for AU and AH)
    thresholds: tuple[float, ...] | None  # AU / AH per-class thresholds tuned on these frames
    frames: int  # valid frames (clips for EMI) scored


def score(
    task: str,
    preds: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    tune: bool = True,
    average: str = "macro",
) -> Validation:
    """Official metric of pooled predictions (activated, (N, out)) against labels (N, K) on `mask`."""
    kind = get_task(task).kind
    thresholds = None
    if kind in ("multilabel", "binary"):
        th = tune_thresholds(preds, labels, mask) if tune else np.full(preds.shape[1], 0.5)
        thresholds = tuple(float(t) for t in th)
        decided = (preds >= th).astype(np.int8)
        decided = decided[:, 0] if kind == "binary" else decided
        result = compute_metric(task, decided, labels, mask, average=average)  # type: ignore[arg-type]
    elif kind == "multiclass":
        result = compute_metric(task, preds.argmax(axis=1), labels[:, 0], mask)
    else:
        result = compute_metric(task, preds, labels, mask)
    return Validation(result, thresholds, int(np.count_nonzero(mask)))


def validate(
    model: nn.Module,
    cache: Any,
    task: str,
    labels: Mapping[str, Any],
    seq_len: int,
    stride: int,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    subjects: Sequence[str] | None = None,
) -> Validation:
    """Predict every frame of the validation subjects, fill frames without a face, score pooled frames."""
    clip = get_task(task).unit == "clip"
    reader = ShardReader(cache, block_rows=max(128, seq_len), cached_blocks=4)
    all_preds, all_labels, all_masks = [], [], []
    for subject in subjects if subjects is not None else list(labels):
        raw, index, face = predict_rows(model, reader, subject, seq_len, stride, batch_size, device, bf16)
        values = np.asarray(labels[subject].values, np.float32)
        valid = np.asarray(labels[subject].valid, bool)
        preds = activate(task, raw)
        if clip:
            all_preds.append(preds[:1])
            all_labels.append(values[:1])
            all_masks.append(valid[:1])
            continue
        preds, _ = fill_values(preds, face)  # frames without a face: interpolated, as in the submission
        target, ok = label_rows(values, valid, index)
        all_preds.append(preds)
        all_labels.append(target)
        all_masks.append(ok)
    return score(task, np.concatenate(all_preds), np.concatenate(all_labels), np.concatenate(all_masks))
