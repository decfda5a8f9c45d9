"""Backbone weights: local files (torch, safetensors; hashed, refused with the keys) and hub errors."""

import pytest
import timm
import torch
from safetensors.torch import save_file

import model.weights as weights_module
from model.backbone import BackboneConfig, build_backbone
from model.weights import BackboneWeightsError


def test_safetensors_weights_and_hash_follow_the_file(tmp_path, classifier_state):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file({k: v.contiguous() for k, v in classifier_state.items()}, a)
    changed = dict(classifier_state, **{"conv_stem.weight": classifier_state["conv_stem.weight"] * 2})
    save_file({k: v.contiguous() for k, v in changed.items()}, b)
    bb_a, bb_b = (
        build_backbone(BackboneConfig(weights=str(a))),
        build_backbone(BackboneConfig(weights=str(b))),
    )
    torch.testing.assert_close(bb_a.frozen.stem[0].weight, classifier_state["conv_stem.weight"])
    assert bb_a.weights_hash != bb_b.weights_hash


def test_weights_of_another_model_are_refused_with_the_keys(tmp_path, classifier_state):
    state = dict(classifier_state)
    del state["blocks.3.0.pw_exp.conv.weight"]
    state["extra.layer.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(BackboneWeightsError) as err:
        build_backbone(BackboneConfig(weights=str(path)))
    assert "1 missing keys (blocks.3.0.pw_exp.conv.weight)" in str(err.value)
    assert "1 unexpected keys (extra.layer.weight)" in str(err.value)
    with pytest.raises(BackboneWeightsError, match="does not exist"):
        build_backbone(BackboneConfig(weights=str(tmp_path / "missing.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneWeightsError, match="cannot read backbone weights file"):
        build_backbone(BackboneConfig(weights=str(tmp_path / "junk.pth")))


@pytest.mark.timeout(30)
def test_pretrained_offline_says_how_to_pass_a_file(monkeypatch):
    monkeypatch.setattr(weights_module, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(BackboneWeightsError, match="--backbone-weights FILE") as err:
        build_backbone(BackboneConfig(pretrained=True))
    assert "unreachable" in str(err.value)


@pytest.mark.timeout(30)
def test_pretrained_hub_failure_says_how_to_pass_a_file(monkeypatch):
    def no_hub(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        raise AssertionError("only the pretrained path is expected here")

    monkeypatch.setattr(weights_module, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(timm, "create_model", no_hub)
    with pytest.raises(BackboneWeightsError, match="--backbone-weights FILE") as err:
        build_backbone(BackboneConfig(pretrained=True))
    assert "couldn't connect" in str(err.value)


def test_pretrained_weights_hash_names_the_hub_tag(monkeypatch):
    create = timm.create_model

    def cached_hub(name, pretrained=False, **kwargs):  # stands in for a hub download that worked
        return create(name, pretrained=False, **kwargs)

    monkeypatch.setattr(weights_module, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(timm, "create_model", cached_hub)
    bb = build_backbone(BackboneConfig(pretrained=True))
    assert bb.weights_hash == "timm:mobilenetv4_conv_small.e2400_r224_in1k"
