"""Every registered model config on every task: shapes, gradients, masking, parameter counts, facts."""

import pytest
import torch

from model.configs import MODEL_CONFIGS, build_model
from model.facts import model_facts
from model.heads import activate, masked_time_mean
from model.losses import loss_for
from model.tasks import TASKS
from tests.helpers import random_maps

B, T = 2, 8
CASES = [(c, t) for c in MODEL_CONFIGS for t in TASKS]

# Parameters of the tail + TAM + head at the registered settings (num_frames 32). A config or task
# missing here fails the test: add its count when registering it.
PARAMS = {
    ("tam_s1", "va"): 2_919_530,
    ("tam_s1", "au"): 2_922_100,
    ("tam_s1", "expr"): 2_921_072,
    ("tam_s1", "ah"): 2_919_273,
    ("tam_s1", "emi"): 2_920_558,
    ("tam_s2", "va"): 4_305_138,
    ("tam_s2", "au"): 4_310_268,
    ("tam_s2", "expr"): 4_308_216,
    ("tam_s2", "ah"): 4_304_625,
    ("tam_s2", "emi"): 4_307_190,
    ("tam_s3", "va"): 6_346_106,
    ("tam_s3", "au"): 6_353_796,
    ("tam_s3", "expr"): 6_350_720,
    ("tam_s3", "ah"): 6_345_337,
    ("tam_s3", "emi"): 6_349_182,
    ("tam_local", "va"): 2_143_634,
    ("tam_local", "au"): 2_146_204,
    ("tam_local", "expr"): 2_145_176,
    ("tam_local", "ah"): 2_143_377,
    ("tam_local", "emi"): 2_144_662,
}
FROZEN_PARAMS = 317_568  # stem and stages up to the stride-16 map of mobilenetv4_conv_small


def targets_for(task: str, gen: torch.Generator) -> torch.Tensor:
    spec = TASKS[task]
    if task == "va":
        return torch.rand(B, T, 2, generator=gen) * 2 - 1
    if task == "expr":
        return torch.randint(0, 8, (B, T), generator=gen)
    if spec.unit == "clip":
        return torch.rand(B, spec.outputs, generator=gen)
    return torch.randint(0, 2, (B, T, spec.outputs), generator=gen).float()


def invalidate(task: str, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Targets with the task's invalid marker (NaN where there is none) at the masked-out entries."""
    marker = TASKS[task].invalid
    bad = torch.tensor(float("nan") if marker is None else marker, dtype=targets.dtype)
    m = mask
    while m.dim() < targets.dim():
        m = m.unsqueeze(-1)
    return torch.where(m, targets, bad)


@pytest.mark.parametrize("config,task", CASES)
def test_parameter_count_is_pinned(backbone, config, task):
    model = build_model(config, task, backbone=backbone)
    assert (config, task) in PARAMS, f"pin the parameter count of {config}/{task} in PARAMS"
    assert sum(p.numel() for p in model.parameters()) == PARAMS[(config, task)]
    assert all(p.requires_grad for p in model.parameters())
    assert sum(p.numel() for p in backbone.frozen.parameters()) == FROZEN_PARAMS


@pytest.mark.parametrize("config,task", CASES)
def test_forward_backward_with_masked_frames(backbone, config, task):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = build_model(config, task, backbone=backbone, num_frames=T)
    spec = TASKS[task]
    frame_mask = torch.ones(B, T, dtype=torch.bool)
    frame_mask[0, 5:] = False  # invalid labels at the end of the first window
    frame_mask[1, :2] = False
    out = model(random_maps(backbone, B, T), mask=frame_mask)
    assert out.shape == ((B, spec.outputs) if spec.unit == "clip" else (B, T, spec.outputs))
    assert torch.isfinite(out).all()
    if spec.unit == "clip":
        loss_mask = torch.tensor([True, True])  # Pearson needs two clips; clip masking: test_losses
    else:
        loss_mask = frame_mask
    targets = invalidate(task, targets_for(task, gen), loss_mask)
    loss = loss_for(task)(out, targets, loss_mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert model.tail is None or any(p.grad.abs().sum() > 0 for p in model.tail.parameters())
    pred = activate(task, out.detach())
    if spec.activation == "softmax":
        torch.testing.assert_close(pred.sum(-1), torch.ones(pred.shape[:-1]))
    lo = -1.0 if spec.activation == "tanh" else 0.0
    assert (pred >= lo).all() and (pred <= 1).all()


@pytest.mark.parametrize("config", list(MODEL_CONFIGS))
def test_gradients_reach_only_the_trainable_part(backbone, config):
    model = build_model(config, "au", backbone=backbone, num_frames=4)
    images = torch.randn(4, 3, 224, 224)
    maps = backbone.frozen(images)  # in the graph: a frozen parameter with requires_grad would get a grad
    maps = tuple(m.reshape(1, 4, *m.shape[1:]) for m in maps)
    model(maps).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in backbone.frozen.parameters())
    assert all(p.grad is not None for p in model.parameters())  # tail (where a level reads it), TAM, head
    assert all(p.grad is None for p in backbone.tail.parameters())  # the model trains its own copy


def test_registered_window_takes_shorter_sequences(backbone):
    model = build_model("tam_s1", "va", backbone=backbone).eval()
    assert model.num_frames == 32
    maps = random_maps(backbone, 1, 6)
    assert model(maps).shape == (1, 6, 2)
    with pytest.raises(ValueError, match="at most 32 frames"):
        model(random_maps(backbone, 1, 33))


def test_model_reads_float16_maps(backbone):
    model = build_model("tam_s3", "expr", backbone=backbone, num_frames=4).eval()
    maps = random_maps(backbone, 1, 4)
    with torch.no_grad():
        full = model(maps)
        half = model(tuple(m.half() for m in maps))
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, atol=1e-2, rtol=1e-2)


def test_predict_applies_the_task_activation(backbone):
    model = build_model("tam_s1", "va", backbone=backbone, num_frames=4)
    model.train()
    maps = random_maps(backbone, 1, 4)
    pred = model.predict(maps)
    assert model.training  # restored
    with torch.no_grad():
        torch.testing.assert_close(pred, torch.tanh(model.eval()(maps)))


def test_clip_pooling_ignores_masked_frames(backbone):
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    torch.testing.assert_close(
        masked_time_mean(x, torch.tensor([[True, True, False]])), torch.tensor([[2.0, 3.0]])
    )
    none_valid = masked_time_mean(x, torch.zeros(1, 3, dtype=torch.bool))
    torch.testing.assert_close(none_valid, x.mean(1))
    model = build_model("tam_s1", "emi", backbone=backbone, num_frames=4).eval()
    maps = random_maps(backbone, 1, 4)
    with torch.no_grad():
        pooled_some = model(maps, torch.tensor([[True, True, False, False]]))
        pooled_all = model(maps)
    assert pooled_some.shape == pooled_all.shape == (1, 6)
    assert not torch.allclose(pooled_some, pooled_all)


def test_facts_of_a_model(backbone):
    model = build_model("tam_s1", "au", backbone=backbone)
    facts = model_facts(model, backbone)
    assert facts.params_trainable == PARAMS[("tam_s1", "au")]
    assert facts.params_total == PARAMS[("tam_s1", "au")] + FROZEN_PARAMS
    assert facts.cache_bytes_per_frame == 2 * (64 * 28 * 28 + 96 * 14 * 14)
    assert facts.gflops_frozen_per_frame > 0 and facts.gflops_tail_tam_per_frame > 0
    bigger = model_facts(build_model("tam_s3", "au", backbone=backbone), backbone)
    assert bigger.gflops_tail_tam_per_frame > facts.gflops_tail_tam_per_frame
    assert bigger.gflops_frozen_per_frame == facts.gflops_frozen_per_frame


def test_unknown_names_are_refused(backbone):
    with pytest.raises(ValueError, match="known configs: tam_s1, tam_s2, tam_s3"):
        build_model("tam_s9", "au", backbone=backbone)
    with pytest.raises(ValueError, match="unknown task"):
        build_model("tam_s1", "xyz", backbone=backbone)
    with pytest.raises(TypeError, match="unknown model config fields"):
        build_model("tam_s1", "au", backbone=backbone, depth=3)


def test_maps_are_standardised_per_channel_before_the_tam(backbone):
    model = build_model("tam_s3", "va", backbone=backbone, num_frames=8)
    maps = random_maps(backbone, 2, 8)
    for k in (0, 1):  # identity until fitted
        torch.testing.assert_close(model.standardise(k, maps[k]), maps[k])
    stats = [(m.mean(dim=(0, 1, 3, 4)), m.std(dim=(0, 1, 3, 4))) for m in maps]  # (C,) each
    model.standardise.fit(stats)
    for k in (0, 1):
        z = model.standardise(k, maps[k])
        torch.testing.assert_close(z.mean(dim=(0, 1, 3, 4)), torch.zeros(len(stats[k][0])), atol=1e-5, rtol=0)
        torch.testing.assert_close(z.std(dim=(0, 1, 3, 4)), torch.ones(len(stats[k][0])), atol=1e-4, rtol=0)
    # the TAM reads the standardised maps: the fitted model answers differently on the same input
    fresh = build_model("tam_s3", "va", backbone=backbone, num_frames=8)
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("standardise.")},
                          strict=False)  # fmt: skip
    with torch.no_grad():
        assert not torch.allclose(model.eval()(maps), fresh.eval()(maps))


def test_a_model_on_the_cached_maps_alone_has_no_tail(backbone):
    local = build_model("tam_local", "au", backbone=backbone, num_frames=8)
    assert local.tail is None
    assert not any(k.startswith("tail.") for k in local.state_dict())
    assert build_model("tam_s1", "au", backbone=backbone, num_frames=8).tail is not None
    assert local(random_maps(backbone, 1, 8)).shape == (1, 8, 12)
