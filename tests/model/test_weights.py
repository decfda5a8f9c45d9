"""Backbone weights: local files (torch, safetensors; hashed, refused with the keys) and hub errors."""

import argparse

import pytest
import timm
import torch
from safetensors.torch import save_file

import model.weights as weights_module
from model.backbone import BackboneConfig, build_backbone
from model.weights import BackboneWeightsError, weights_metadata


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


def _safetensors_with(path, state, metadata):
    save_file({k: v.contiguous() for k, v in state.items()}, path, metadata=metadata)
    return path


def test_normalisation_and_input_size_come_from_the_file(tmp_path, classifier_state):
    plain = build_backbone(
        BackboneConfig(weights=str(_safetensors_with(tmp_path / "a.safetensors", classifier_state, None)))
    )
    timm_default = timm.create_model("mobilenetv4_conv_small").pretrained_cfg
    assert plain.mean == tuple(timm_default["mean"]) and plain.normalization_source == "timm"
    assert plain.spec()["normalization"] == {
        "mean": list(timm_default["mean"]), "std": list(timm_default["std"]), "source": "timm"
    }  # fmt: skip
    meta = weights_metadata((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), 112)
    bb = build_backbone(
        BackboneConfig(weights=str(_safetensors_with(tmp_path / "b.safetensors", classifier_state, meta)))
    )
    assert bb.mean == (0.5, 0.4, 0.3) and bb.std == (0.2, 0.25, 0.3) and bb.weights_input_size == 112
    assert bb.spec()["normalization"] == {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "source": "file"}
    # a torch checkpoint: top-level keys next to the state dict (timm's (3, S, S) input size works too)
    path = tmp_path / "c.pth.tar"
    torch.save({"state_dict": classifier_state, "mean": [0.1, 0.2, 0.3], "std": torch.tensor([0.3, 0.2, 0.1]),
                "input_size": (3, 112, 112)}, path)  # fmt: skip
    ckpt = build_backbone(BackboneConfig(weights=str(path)))
    assert ckpt.mean == pytest.approx((0.1, 0.2, 0.3)) and ckpt.std == pytest.approx((0.3, 0.2, 0.1))
    assert ckpt.normalization_source == "file" and ckpt.weights_input_size == 112


def test_malformed_normalisation_is_refused_naming_the_file(tmp_path, classifier_state):
    cases = {
        "one.safetensors": {"mean": "[0.5, 0.5, 0.5]"},
        "two.safetensors": {"mean": "[0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"},
        "zero.safetensors": {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.0, 0.5]"},
        "size.safetensors": {"input_size": "3.5"},
    }
    for name, meta in cases.items():
        path = _safetensors_with(tmp_path / name, classifier_state, meta)
        with pytest.raises(BackboneWeightsError, match=name):
            build_backbone(BackboneConfig(weights=str(path)))


@pytest.mark.parametrize("size", [112, 224])
def test_seed_format_checkpoint_gives_the_classifiers_own_maps(tmp_path, size):
    """A file as the seed authors publish theirs: torch.save of a dict with a DDP-wrapped state dict of a
    timm classification model (head included) beside training state; the frozen maps equal the model's."""
    torch.manual_seed(size)
    model = timm.create_model("mobilenetv4_conv_small", pretrained=False, num_classes=8).eval()
    path = tmp_path / "model_best.pth.tar"
    args = argparse.Namespace(model="mobilenetv4_conv_small", img_size=size, num_classes=8)
    torch.save({"epoch": 41, "arch": "mobilenetv4_conv_small", "args": args, "best_acc1": 0.6,
                "state_dict": {"module." + k: v for k, v in model.state_dict().items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.001}]}}, path)  # fmt: skip
    bb = build_backbone(BackboneConfig(weights=str(path), input_size=size)).eval()
    assert sorted(bb.dropped_keys) == sorted(
        k for k in model.state_dict() if k.startswith(("conv_head", "norm_head", "classifier"))
    )
    assert any(k.startswith("classifier") for k in bb.dropped_keys)
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        x = model.bn1(model.conv_stem(images))  # stem: conv and BatchNorm with its activation
        own = []
        for block in model.blocks:
            x = block(x)
            own.append(x)  # (2, C, size / 4 ... size / 32) after each stage
        s8, s16 = bb.frozen(images)
        maps = bb.features(images)
    assert s8.shape == (2, 64, size // 8, size // 8) and s16.shape == (2, 96, size // 16, size // 16)
    torch.testing.assert_close(s8, own[1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s16, own[2], rtol=1e-4, atol=1e-4)
    # (2, 960, size / 32, size / 32): channels-last convolutions round differently five blocks deep
    torch.testing.assert_close(maps[2], own[4], rtol=1e-3, atol=1e-3)
