"""Each task's loss against values worked out by hand or with numpy, masking, and all-invalid batches."""

import math

import numpy as np
import pytest
import torch

from model.losses import loss_for
from model.tasks import TASKS

LN2 = math.log(2.0)


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return torch.tensor(np.log(p / (1 - p)))


def test_va_one_minus_mean_ccc_by_hand():
    # valence: pred (0, 0.5) vs (0, 1): cov 0.125, variances 0.0625 and 0.25, mean gap 0.25 -> CCC 2/3
    # arousal: pred (0.5, 0.5) vs (0.5, -0.5): constant prediction -> CCC 0. The third frame is invalid.
    pred = torch.tensor([[[0.0, 0.5], [0.5, 0.5], [0.9, -0.9]]], dtype=torch.float64)
    targets = torch.tensor([[[0.0, 0.5], [1.0, -0.5], [-5.0, -5.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    loss = loss_for("va")(torch.atanh(pred), targets, mask)
    assert loss.item() == pytest.approx(1 - (2 / 3 + 0) / 2, abs=1e-6)


def test_va_with_mse_matches_numpy():
    rng = np.random.default_rng(0)
    pred, target = rng.uniform(-0.9, 0.9, (2, 5, 2)), rng.uniform(-1, 1, (2, 5, 2))
    mask = np.ones((2, 5), bool)
    mask[1, 3:] = False
    p, t = pred[mask], target[mask]  # (M, 2)
    ccc = [
        2
        * np.mean((p[:, k] - p[:, k].mean()) * (t[:, k] - t[:, k].mean()))
        / (p[:, k].var() + t[:, k].var() + (p[:, k].mean() - t[:, k].mean()) ** 2)
        for k in range(2)
    ]
    expected = 1 - np.mean(ccc) + 0.5 * np.mean((p - t) ** 2)
    target[~mask] = -5.0
    got = loss_for("va", mse_weight=0.5)(
        torch.atanh(torch.tensor(pred)), torch.tensor(target), torch.tensor(mask)
    )
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_au_focal_by_hand():
    # logit 0 (p = 0.5): positive 0.75 * 0.5^2 * ln 2, negative 0.25 * 0.5^2 * ln 2; the -1 entries are invalid
    outputs = torch.zeros(1, 2, 2)
    targets = torch.tensor([[[1.0, 0.0], [-1.0, -1.0]]])
    mask = torch.tensor([[True, False]])
    loss = loss_for("au")(outputs, targets, mask)
    assert loss.item() == pytest.approx((0.75 * 0.25 * LN2 + 0.25 * 0.25 * LN2) / 2, rel=1e-6)


def test_au_focal_matches_numpy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 3, 12)), rng.integers(0, 2, (2, 3, 12)).astype(float)
    p = 1 / (1 + np.exp(-x))
    ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = np.where(y == 1, 0.75, 0.25)
    expected = np.mean(alpha_t * (1 - p_t) ** 2 * ce)
    got = loss_for("au", alpha=0.75, gamma=2.0)(torch.tensor(x), torch.tensor(y), None)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_au_weighted_bce_by_hand():
    # logit 0: AU0 positive with weight 2 -> 2 ln 2, AU1 negative -> ln 2
    loss = loss_for("au", kind="bce", pos_weight=[2.0, 1.0])(
        torch.zeros(1, 1, 2), torch.tensor([[[1.0, 0.0]]])
    )
    assert loss.item() == pytest.approx(1.5 * LN2, rel=1e-6)


def test_expr_uniform_logits_by_hand():
    # 8 equal logits: p = 1/8, smoothed CE = ln 8 whatever the class, focal factor (7/8)^2
    outputs = torch.zeros(1, 3, 8)
    targets = torch.tensor([[4, 0, -1]])
    loss = loss_for("expr", gamma=2.0, label_smoothing=0.1)(outputs, targets, targets >= 0)
    assert loss.item() == pytest.approx((7 / 8) ** 2 * math.log(8), rel=1e-6)


def test_expr_focal_smoothing_weights_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 4, 8))
    y = np.array([[2, 7, 0, 5]])
    w = np.linspace(0.5, 2.0, 8)
    eps, gamma = 0.2, 1.5
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    q = np.full((1, 4, 8), eps / 8)
    for i, c in enumerate(y[0]):
        q[0, i, c] += 1 - eps
    ce = -(q * logp).sum(-1)
    p_y = np.exp(np.take_along_axis(logp, y[..., None], -1)[..., 0])
    mask = np.array([[True, True, False, True]])
    per = w[y] * (1 - p_y) ** gamma * ce
    expected = per[mask].sum() / w[y][mask].sum()
    fn = loss_for("expr", gamma=gamma, label_smoothing=eps, class_weights=w.tolist())
    got = fn(torch.tensor(x), torch.tensor(y), torch.tensor(mask))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_ah_weighted_bce_by_hand():
    outputs = torch.zeros(1, 3, 1)
    targets = torch.tensor([[1.0, 0.0, float("nan")]])
    mask = torch.tensor([[True, True, False]])
    loss = loss_for("ah", pos_weight=3.0)(outputs, targets, mask)
    assert loss.item() == pytest.approx((3 * LN2 + LN2) / 2, rel=1e-6)


def test_emi_one_minus_pearson_matches_numpy():
    rng = np.random.default_rng(3)
    p, t = rng.uniform(0.05, 0.95, (5, 6)), rng.uniform(0, 1, (5, 6))
    mask = np.array([True, True, True, False, True])
    r = [np.corrcoef(p[mask, k], t[mask, k])[0, 1] for k in range(6)]
    t[~mask] = np.nan
    got = loss_for("emi")(logit(p), torch.tensor(t), torch.tensor(mask))
    assert got.item() == pytest.approx(1 - np.mean(r), rel=1e-6)


def test_emi_perfect_correlation_gives_zero():
    p = torch.tensor([[0.1] * 6, [0.5] * 6, [0.7] * 6], dtype=torch.float64)
    loss = loss_for("emi")(logit(p.numpy()), 2 * p + 0.1)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def _all_invalid_batch(task):
    spec = TASKS[task]
    if spec.unit == "clip":
        shape, mask = (3, spec.outputs), torch.zeros(3, dtype=torch.bool)
    else:
        shape, mask = (2, 4, spec.outputs), torch.zeros(2, 4, dtype=torch.bool)
    if task == "expr":
        targets = torch.full(shape[:-1], -1)
    else:
        targets = torch.full(shape, float("nan"))
    return torch.randn(shape, requires_grad=True), targets, mask


@pytest.mark.parametrize("task", list(TASKS))
def test_all_invalid_batch_gives_zero_loss_and_zero_gradient(task):
    outputs, targets, mask = _all_invalid_batch(task)
    loss = loss_for(task)(outputs, targets, mask)
    assert loss.item() == 0.0
    loss.backward()
    assert outputs.grad is not None and torch.equal(outputs.grad, torch.zeros_like(outputs))


@pytest.mark.parametrize("task", list(TASKS))
def test_invalid_entries_do_not_change_the_loss(task):
    outputs, targets, mask = _all_invalid_batch(task)
    good = torch.rand_like(outputs.detach()) if task != "expr" else torch.randint(0, 8, targets.shape)
    if task == "va":
        good = good * 2 - 1
    if task == "emi":
        mask[:2] = True
    else:
        mask[:, :3] = True
    m = mask
    while m.dim() < good.dim():
        m = m.unsqueeze(-1)
    a = loss_for(task)(outputs, torch.where(m, good, targets), mask)
    b = loss_for(task)(outputs, torch.where(m, good, torch.zeros_like(good)), mask)
    assert torch.isfinite(a) and a.item() == pytest.approx(b.item(), rel=1e-6)
    a.backward()
    assert torch.isfinite(outputs.grad).all()


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match="va loss"):
        loss_for("va", gamma=2.0)
