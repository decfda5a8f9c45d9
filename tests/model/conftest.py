"""Shared fixtures of the model tests: a random-init backbone, a classifier state dict, small inputs."""

import pytest
import timm
import torch

from model.backbone import BackboneConfig, build_backbone


@pytest.fixture(scope="session")
def backbone():
    torch.manual_seed(0)
    return build_backbone(BackboneConfig(pretrained=False))


@pytest.fixture(scope="module")
def classifier_state():
    """A timm classification model's state dict (random init, AffectNet-like 8-class head)."""
    torch.manual_seed(1)
    return timm.create_model("mobilenetv4_conv_small", num_classes=8).state_dict()


def random_maps(backbone, batch: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Boundary maps (B, T, C, H, W) shaped like the backbone's, non-negative like ReLU outputs."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, frames, *shape, generator=g) for shape in backbone.boundary_shapes)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors run faster on one thread on a shared 2-core machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
