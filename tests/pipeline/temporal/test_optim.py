"""Optimisation: training steps (plain, bf16, on the real model), the learning-rate schedule, the EMA."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.temporal.optim import EMA, lr_factor, make_scheduler, restart_factor, train_step
from pipeline.temporal.windows import WindowConfig, WindowDataset, window_loader
from tests.helpers import FakeCache, labels_for


class PooledLinear(nn.Module):
    """Per-frame linear head over channel means of both maps: (B, T, C, H, W) -> (B, T, out)."""

    def __init__(self, channels: int, out: int):
        super().__init__()
        self.head = nn.Linear(channels, out)

    def forward(self, maps):
        pooled = torch.cat([m.mean(dim=(3, 4)) for m in maps], dim=-1)  # (B, T, C1 + C2)
        return self.head(pooled)


def masked_mse(outputs, targets, mask):
    return ((outputs - targets) ** 2).mean(-1)[mask].mean()


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factors = [lr_factor(s, 100, 10, 0.01) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert lr_factor(100, 100, 10, 0.01) == pytest.approx(0.01)
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make_scheduler(opt, 100, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    for _ in range(9):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0)


def test_restart_schedule_decays_over_each_period_and_starts_again():
    factors = [restart_factor(s, 50, 0, 0.002) for s in range(150)]
    assert factors[0] == factors[50] == factors[100] == pytest.approx(1.0)  # a restart every 50 steps
    assert factors[49] == pytest.approx(0.002, abs=0.002) and factors[25] == pytest.approx(0.501)
    assert all(a > b for a, b in zip(factors[:49], factors[1:50], strict=True))
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, 1000, 0, 0.002, schedule="restarts", period=50)
    for _ in range(50):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)  # the whole run is 1000 steps: still restarts
    with pytest.raises(ValueError, match="schedule"):
        make_scheduler(opt, 10, 0, schedule="linear")  # type: ignore[arg-type]


def make_regression_problem(n=96, seed=0):
    """Frames whose label is a fixed linear function of their (random) map channel means."""
    rng = np.random.default_rng(seed)
    shapes = ((4, 2, 2), (3, 1, 1))
    cache = FakeCache({"a": n}, shapes=shapes)
    feats = rng.normal(size=(n, 7)).astype(np.float16)

    def read(subject, start=0, stop=None, maps=True):
        stop = n if stop is None else stop
        f = feats[start:stop]
        maps = (
            np.broadcast_to(f[:, :4, None, None], (stop - start, 4, 2, 2)).copy(),
            f[:, 4:, None, None].copy(),
        )
        return SimpleNamespace(index=np.arange(start, stop), face=np.ones(stop - start, bool), maps=maps)

    cache.read = read
    w = rng.normal(size=(7, 2))
    labels = {"a": labels_for(np.tanh(feats.astype(np.float32) @ w / 3))}
    return cache, labels


def test_train_steps_reduce_the_loss_on_a_small_problem():
    torch.manual_seed(0)
    cache, labels = make_regression_problem()
    ds = WindowDataset(cache, labels, "va", WindowConfig(seq_len=8, stride=8, seed=0))
    model = PooledLinear(7, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    first = None
    for epoch in range(30):
        ds.set_epoch(epoch)
        losses = [train_step(model, b, masked_mse, opt, grad_clip=1.0) for b in window_loader(ds, 4)]
        first = first if first is not None else np.mean(losses)
    assert np.mean(losses) < 0.2 * first


def test_train_step_skips_batches_without_valid_frames():
    model = PooledLinear(7, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    batch = (
        (torch.ones(2, 4, 4, 2, 2), torch.ones(2, 4, 3, 1, 1)),
        torch.zeros(2, 4, 2),
        torch.zeros(2, 4, dtype=torch.bool),
    )
    assert train_step(model, batch, masked_mse, opt) is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_train_step_under_bf16_autocast_still_learns():
    torch.manual_seed(0)
    cache, labels = make_regression_problem()
    ds = WindowDataset(cache, labels, "va", WindowConfig(seq_len=8, stride=8, shuffle=False))
    model = PooledLinear(7, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    losses = [
        train_step(model, b, masked_mse, opt, bf16=True) for _ in range(20) for b in window_loader(ds, 4)
    ]
    assert np.isfinite(losses).all() and np.mean(losses[-12:]) < 0.5 * np.mean(losses[:12])


def test_ema_tracks_the_weights_and_restores_the_model():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 0.75))
    with ema.applied(model) as m:
        assert torch.allclose(m.weight, torch.full((1, 2), 0.75))
    assert torch.allclose(model.weight, torch.ones(1, 2))


@pytest.mark.parametrize("task", ["va", "emi"])
def test_train_steps_fit_a_fixed_batch_with_the_real_model(task):
    from model.backbone import BackboneConfig
    from model.configs import build_model
    from model.losses import loss_for

    torch.manual_seed(0)
    model = build_model("tam_s1", task, BackboneConfig(), num_frames=4)
    maps = (torch.randn(4, 4, 64, 28, 28), torch.randn(4, 4, 96, 14, 14))
    mask = torch.ones(4, 4, dtype=torch.bool)
    targets = torch.rand(4, 6) if task == "emi" else torch.rand(4, 4, 2) * 2 - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = [train_step(model, (maps, targets, mask), loss_for(task), opt) for _ in range(8)]
    assert losses[-1] < 0.5 * losses[0]
