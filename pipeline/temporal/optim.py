"""Optimisation of the temporal model on cached maps: one training step and what paces it.

One optimiser step over a batch of windows (`train_step`: bf16 autocast optional, gradient clipping), the
AdamW parameter groups (`param_groups`: no weight decay on norms and biases), the learning-rate schedules
(`lr_factor`: warm-up + one cosine decay over the run; `restart_factor`: warm-up + cosine decays restarted
every `period` steps, as torch's CosineAnnealingWarmRestarts; `make_scheduler`) and an exponential moving
average of the weights (`EMA`). `autocast` is shared with prediction (`pipeline.temporal.predictor`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]  # maps, targets, mask
Schedule = Literal["cosine", "restarts"]  # one cosine decay over the run, or restarted every period
SCHEDULES: tuple[Schedule, ...] = ("cosine", "restarts")


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.01) -> float:
    """Learning-rate multiplier at `step`: linear warm-up to 1, then cosine decay to `min_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def restart_factor(step: int, period: int, warmup_steps: int, min_ratio: float = 0.01) -> float:
    """Learning-rate multiplier at `step`: linear warm-up to 1, then a cosine decay to `min_ratio` over
    `period` steps that starts again at 1 every `period` steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = ((step - warmup_steps) % period) / period
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    min_ratio: float = 0.01,
    schedule: Schedule = "cosine",
    period: int = 2000,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule `schedule` ("cosine": `lr_factor`; "restarts": `restart_factor` every `period` steps),
    stepped once per optimiser step."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, min_ratio)
        )
    if schedule == "restarts":
        if period < 1:
            raise ValueError(f"a restart period must be at least one step, got {period}")
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: restart_factor(step, period, warmup_steps, min_ratio)
        )
    raise ValueError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: weights of linear and convolution layers decay, norms'
    scales and shifts and every bias (parameters of one dimension) do not."""
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


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
