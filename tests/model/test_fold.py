"""BatchNorm folded into the convolution before it: the same outputs, only where the BatchNorm reads the
convolution's output, and the module left alone where folding would change what it computes."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from model.backbone import BackboneConfig, build_backbone
from model.fold import conv_bn_pairs, fold_batchnorm


def _with_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    """`module` with random BatchNorm statistics and affine parameters (a fresh one's are 0, 1: folding
    them would change almost nothing)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return module.eval()


def _probe(size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_frozen_backbone_folds_every_batchnorm_and_makes_the_same_maps():
    backbone = build_backbone(BackboneConfig(pretrained=False))
    _with_statistics(backbone.frozen)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.frozen.modules())
    images = _probe(224, seed=2)
    with torch.no_grad():
        want = backbone.frozen(images)
    frozen = backbone.frozen
    backbone.frozen, folded = backbone.folded_frozen()
    assert folded == batchnorms > 10 and backbone.frozen is not frozen
    assert any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())  # the original part is kept as it was
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.frozen.modules())
    with torch.no_grad():
        got = backbone.frozen(images)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4 * float(w.abs().max()))
    # the activations stayed (timm's BatchNormAct2d: ReLU after the scale and shift)
    assert any(isinstance(m, nn.ReLU) for m in backbone.frozen.modules())
    assert not any(p.requires_grad for p in backbone.frozen.parameters())


def test_the_weights_keep_the_channels_last_layout():
    backbone = build_backbone(BackboneConfig(pretrained=False, channels_last=True))
    frozen, _ = backbone.folded_frozen()
    convs = [m for m in frozen.modules() if isinstance(m, nn.Conv2d) and m.weight.shape[-1] > 1]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_only_a_batchnorm_reading_a_convolutions_output_is_folded():
    conv_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    conv_relu_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))  # BN after the ReLU
    for module, folded in ((conv_bn, 1), (conv_relu_bn, 0)):
        _with_statistics(module)
        assert len(conv_bn_pairs(module, _probe())) == folded
        out, n = fold_batchnorm(module, _probe())
        assert n == folded
        torch.testing.assert_close(out(_probe(seed=3)), module(_probe(seed=3)), rtol=1e-4, atol=1e-4)


class _Shortcut(nn.Module):
    """bn(conv(x)) + conv(x): the convolution's output is used twice, so the BatchNorm cannot be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_a_fold_that_would_change_the_output_is_refused(caplog):
    module = _with_statistics(_Shortcut())
    with caplog.at_level(logging.WARNING, logger="model.fold"):
        out, n = fold_batchnorm(module, _probe())
    assert out is module and n == 0
    assert isinstance(module.bn, nn.BatchNorm2d)  # the original is untouched
    assert "left unfolded" in caplog.text


def test_a_module_in_training_mode_is_refused():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(module, _probe())


def test_the_original_module_is_left_as_it_was():
    module = _with_statistics(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    before = copy.deepcopy(module.state_dict())
    folded, n = fold_batchnorm(module, _probe())
    assert n == 1 and folded is not module
    assert module.state_dict().keys() == before.keys()
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, before[key])
