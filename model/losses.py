"""Training losses of the five tasks, over raw head outputs, ignoring invalid frames.

Every loss is called as `loss(outputs, targets, mask)`: outputs are the model's raw (pre-activation) head
outputs, `mask` (B, T) or (B,) is true where the label is valid (None: all valid). Invalid entries may hold
any value (the annotation's -5 / -1 markers, NaN): they are replaced before any arithmetic, so they reach
neither the loss nor the gradient. With no valid entry a loss is an exact zero, with zero gradients.

- va: 1 - CCC of tanh(outputs) per dimension (pooled over all valid frames of the batch), mean over
  valence and arousal, plus `mse_weight` x MSE. CCC uses population moments like the metric.
- au: sigmoid focal loss (alpha 0.75, gamma 2; Lin et al. 2017) or BCE with per-AU positive weights.
- expr: focal cross-entropy with label smoothing and optional class weights:
  w_y (1 - p_y)^gamma sum_k q_k (-log p_k), q = (1 - eps) onehot(y) + eps / K, normalised by sum of w_y.
- ah: BCE with a positive-class weight.
- emi: 1 - Pearson r per intensity over the clips of the batch, mean over the 6.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from model.tasks import get_task

EPS = 1e-8  # keeps correlation denominators away from zero


def _full(outputs: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (autocast) in float32: correlations and logs need the range."""
    return outputs.float() if outputs.dtype in (torch.float16, torch.bfloat16) else outputs


def _valid(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Boolean mask broadcast to `like` (mask (B, T) or (B,) against (B, T, K) or (B, K))."""
    if mask is None:
        return torch.ones_like(like, dtype=torch.bool)
    m = mask.to(device=like.device, dtype=torch.bool)
    while m.dim() < like.dim():
        m = m.unsqueeze(-1)
    return m.expand_as(like)


def _masked_mean(
    values: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of `values` over `valid` entries (weighted when `weights` is given); 0 when there is none."""
    w = valid.to(values.dtype) if weights is None else torch.where(valid, weights, 0.0)
    total = torch.where(valid, values, 0.0) * w
    return total.sum() / w.sum().clamp_min(EPS)


def _columns(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])  # (B, T, K) or (B, K) -> (M, K)


def _correlation(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, concordance: bool
) -> torch.Tensor:
    """Per-column CCC or Pearson r of (M, K) over the valid rows; (K,)."""
    w = valid.to(pred.dtype)
    n = w.sum(0).clamp_min(1.0)
    pred, target = torch.where(valid, pred, 0.0), torch.where(valid, target, 0.0)
    mp, mt = (pred * w).sum(0) / n, (target * w).sum(0) / n
    dp, dt = (pred - mp) * w, (target - mt) * w
    cov = (dp * dt).sum(0) / n
    vp, vt = (dp * dp).sum(0) / n, (dt * dt).sum(0) / n
    if concordance:
        return 2 * cov / (vp + vt + (mp - mt) ** 2 + EPS)
    return cov / torch.sqrt(vp * vt + EPS)


class VALoss:
    """1 - mean CCC of valence and arousal (+ mse_weight x MSE)."""

    def __init__(self, mse_weight: float = 0.0):
        self.mse_weight = mse_weight

    def __call__(self, outputs, targets, mask=None) -> torch.Tensor:
        outputs = _full(outputs)
        valid = _valid(mask, outputs) & torch.isfinite(targets)
        pred, target = _columns(torch.tanh(outputs)), _columns(targets.to(outputs.dtype))
        valid = _columns(valid)
        if not valid.any():
            return torch.where(valid, outputs.reshape(valid.shape), 0.0).sum() * 0.0
        loss = 1.0 - _correlation(pred, target, valid, concordance=True).mean()
        if self.mse_weight:
            loss = loss + self.mse_weight * _masked_mean((pred - torch.where(valid, target, 0.0)) ** 2, valid)
        return loss


class AULoss:
    """Sigmoid focal loss (`kind="focal"`) or BCE with positive weights (`kind="bce"`) per AU."""

    def __init__(
        self,
        kind: str = "focal",
        alpha: float = 0.75,
        gamma: float = 2.0,
        pos_weight: Sequence[float] | None = None,
    ):
        if kind not in ("focal", "bce"):
            raise ValueError(f"AU loss kind must be focal or bce, got {kind!r}")
        self.kind, self.alpha, self.gamma = kind, alpha, gamma
        self.pos_weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)

    def __call__(self, outputs, targets, mask=None) -> torch.Tensor:
        outputs = _full(outputs)
        valid = _valid(mask, outputs) & torch.isfinite(targets)
        y = torch.where(valid, targets.to(outputs.dtype), 0.0)
        if self.kind == "bce":
            pw = None if self.pos_weight is None else self.pos_weight.to(outputs)
            ce = F.binary_cross_entropy_with_logits(outputs, y, pos_weight=pw, reduction="none")
            return _masked_mean(ce, valid)
        ce = F.binary_cross_entropy_with_logits(outputs, y, reduction="none")
        p = torch.sigmoid(outputs)
        p_t = p * y + (1 - p) * (1 - y)
        alpha_t = self.alpha * y + (1 - self.alpha) * (1 - y)
        return _masked_mean(alpha_t * (1 - p_t) ** self.gamma * ce, valid)


class ExprLoss:
    """Focal cross-entropy with label smoothing and optional class weights."""

    def __init__(
        self, gamma: float = 2.0, label_smoothing: float = 0.1, class_weights: Sequence[float] | None = None
    ):
        self.gamma, self.label_smoothing = gamma, label_smoothing
        self.class_weights = (
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )

    def __call__(self, outputs, targets, mask=None) -> torch.Tensor:
        outputs = _full(outputs)
        k = outputs.shape[-1]
        logits = _columns(outputs)  # (M, K)
        labels = targets.reshape(-1)  # (B, T) or (B, T, 1) -> (M,)
        valid = _valid(mask, targets.reshape(outputs.shape[:-1])).reshape(-1)
        valid = valid & torch.isfinite(labels) & (labels >= 0) & (labels < k)
        labels = torch.where(valid, labels, 0).long()
        log_p = torch.log_softmax(logits, dim=-1)
        q = F.one_hot(labels, k).to(log_p.dtype) * (1 - self.label_smoothing) + self.label_smoothing / k
        ce = -(q * log_p).sum(-1)  # (M,)
        p_y = log_p.gather(1, labels[:, None]).squeeze(1).exp()
        loss = (1 - p_y) ** self.gamma * ce
        weights = None if self.class_weights is None else self.class_weights.to(log_p)[labels]
        return _masked_mean(loss, valid, weights)


class AHLoss:
    """BCE with a positive-class weight."""

    def __init__(self, pos_weight: float = 1.0):
        self.pos_weight = pos_weight

    def __call__(self, outputs, targets, mask=None) -> torch.Tensor:
        outputs = _full(outputs)
        y = targets.reshape(outputs.shape).to(outputs.dtype)
        valid = _valid(mask, outputs) & torch.isfinite(y)
        y = torch.where(valid, y, 0.0)
        pw = torch.tensor(self.pos_weight, dtype=outputs.dtype, device=outputs.device)
        ce = F.binary_cross_entropy_with_logits(outputs, y, pos_weight=pw, reduction="none")
        return _masked_mean(ce, valid)


class EMILoss:
    """1 - mean Pearson r of sigmoid(outputs) per intensity over the clips of the batch."""

    def __call__(self, outputs, targets, mask=None) -> torch.Tensor:
        outputs = _full(outputs)
        valid = _valid(mask, outputs) & torch.isfinite(targets)
        if not valid.any():
            return torch.where(valid, outputs, 0.0).sum() * 0.0
        pred, target = torch.sigmoid(outputs), targets.to(outputs.dtype)
        return 1.0 - _correlation(_columns(pred), _columns(target), _columns(valid), concordance=False).mean()


LOSSES = {"va": VALoss, "au": AULoss, "expr": ExprLoss, "ah": AHLoss, "emi": EMILoss}


def loss_for(task: str, **options):
    """The loss of `task` with its options (see the classes above); unknown options are a TypeError."""
    spec = get_task(task)
    cls = LOSSES[spec.name]
    try:
        return cls(**options)
    except TypeError as e:
        raise TypeError(f"{spec.name} loss: {e}") from None
