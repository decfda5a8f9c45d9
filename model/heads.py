"""Task heads and the activations that turn head outputs into predictions.

Frame tasks (VA 2, AU 12, EXPR 8, AH 1) get one linear head output per frame; the clip task (EMI 6) averages
the per-frame features over the valid frames of a clip first. Heads return raw outputs (pre-activation);
`activate` applies the task table's activation (tanh, sigmoid, softmax), the losses apply their own.
"""

from __future__ import annotations

import torch
from torch import nn

from model.tasks import TaskSpec, get_task


def masked_time_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, F) -> (B, F): mean over the frames where mask (B, T) is true; all frames where none is."""
    if mask is None:
        return x.mean(1)
    weights = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    count = weights.sum(1, keepdim=True)  # (B, 1, 1)
    weights = torch.where(count > 0, weights, torch.ones_like(weights))  # a clip with no valid frame: all
    return (x * weights).sum(1) / weights.sum(1)


class TaskHead(nn.Module):
    """Dropout and a linear layer: (B, T, F) -> (B, T, outputs), or (B, outputs) for a clip task."""

    def __init__(self, task: TaskSpec, in_dim: int, dropout: float):
        super().__init__()
        self.per_clip = task.unit == "clip"
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, task.outputs)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.per_clip:
            features = masked_time_mean(features, mask)  # (B, T, F) -> (B, F)
        return self.linear(self.dropout(features))


def activate(task: str | TaskSpec, outputs: torch.Tensor) -> torch.Tensor:
    """Predictions from raw head outputs: VA in [-1, 1], AU/AH/EMI probabilities, EXPR class probabilities."""
    spec = get_task(task) if isinstance(task, str) else task
    if spec.activation == "tanh":
        return torch.tanh(outputs)
    if spec.activation == "sigmoid":
        return torch.sigmoid(outputs)
    if spec.activation == "softmax":
        return torch.softmax(outputs, dim=-1)
    raise ValueError(f"task {spec.name} has an unknown activation {spec.activation!r}")
