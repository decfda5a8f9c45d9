"""Shared fixtures of the model tests: a random-init backbone, a classifier state dict, one torch thread."""

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


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every model test runs on one torch thread (`one_thread` of tests/conftest.py)."""
