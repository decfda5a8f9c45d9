"""The backbone split: frozen part + tail equal timm's features_only model; weights files; hub errors."""

import pytest
import timm
import torch
from safetensors.torch import save_file

import model.backbone as backbone_module
from model.backbone import OUT_INDICES, RANDOM_INIT, BackboneConfig, BackboneWeightsError, build_backbone


@pytest.fixture(scope="module")
def classifier_state():
    """A timm classification model's state dict (random init, AffectNet-like 8-class head)."""
    torch.manual_seed(1)
    return timm.create_model("mobilenetv4_conv_small", num_classes=8).state_dict()


def reference_features(state, images):
    ref = timm.create_model("mobilenetv4_conv_small", features_only=True, out_indices=OUT_INDICES).eval()
    ref.load_state_dict({k: v for k, v in state.items() if k in ref.state_dict()})
    with torch.no_grad():
        return ref(images)


def test_maps_shapes_and_normalisation(backbone):
    assert backbone.map_shapes == ((64, 28, 28), (96, 14, 14), (960, 7, 7))
    assert backbone.boundary_shapes == ((64, 28, 28), (96, 14, 14))
    cfg = timm.create_model("mobilenetv4_conv_small", pretrained=False).pretrained_cfg
    assert backbone.mean == tuple(cfg["mean"]) and backbone.std == tuple(cfg["std"])
    assert backbone.weights_hash == RANDOM_INIT
    with torch.no_grad():
        s8, s16 = backbone.frozen(torch.randn(2, 3, 224, 224))
    assert s8.shape == (2, 64, 28, 28) and s16.shape == (2, 96, 14, 14)


def test_normalisation_follows_the_weights_tag():
    other = build_backbone(BackboneConfig(name="mobilenetv4_conv_small.e3600_r256_in1k", channels_last=False))
    assert other.mean == (0.5, 0.5, 0.5) and other.std == (0.5, 0.5, 0.5)


def test_frozen_then_tail_equals_timm_features(tmp_path, classifier_state):
    # a fine-tuned checkpoint: weights under `state_dict`, DDP + wrapper prefixes, a classifier head
    path = tmp_path / "affectnet.pth.tar"
    wrapped = {f"module.backbone.{k}": v for k, v in classifier_state.items()}
    torch.save({"epoch": 7, "state_dict": wrapped, "best_metric": 0.61}, path)
    bb = build_backbone(BackboneConfig(weights=str(path))).eval()
    assert bb.weights_hash.startswith("sha256:") and len(bb.weights_hash) == len("sha256:") + 16
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        split = bb.tail(bb.frozen(images))
    expected = reference_features(classifier_state, images)
    assert len(split) == len(expected) == 3
    for got, want in zip(split, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    with torch.no_grad():
        for a, b in zip(bb.features(images), split, strict=True):
            torch.testing.assert_close(a, b)


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


def test_frozen_part_stays_frozen(backbone):
    backbone.train()
    assert not backbone.frozen.training and backbone.tail.training
    assert not any(p.requires_grad for p in backbone.frozen.parameters())
    assert all(p.requires_grad for p in backbone.tail.parameters())
    assert not any(m.training for m in backbone.frozen.modules())


@pytest.mark.timeout(30)
def test_pretrained_offline_says_how_to_pass_a_file(monkeypatch):
    monkeypatch.setattr(backbone_module, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(BackboneWeightsError, match="--backbone-weights FILE") as err:
        build_backbone(BackboneConfig(pretrained=True))
    assert "unreachable" in str(err.value)


@pytest.mark.timeout(30)
def test_pretrained_hub_failure_says_how_to_pass_a_file(monkeypatch):
    def no_hub(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        raise AssertionError("only the pretrained path is expected here")

    monkeypatch.setattr(backbone_module, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(timm, "create_model", no_hub)
    with pytest.raises(BackboneWeightsError, match="--backbone-weights FILE") as err:
        build_backbone(BackboneConfig(pretrained=True))
    assert "couldn't connect" in str(err.value)


def test_pretrained_weights_hash_names_the_hub_tag(monkeypatch):
    create = timm.create_model

    def cached_hub(name, pretrained=False, **kwargs):  # stands in for a hub download that worked
        return create(name, pretrained=False, **kwargs)

    monkeypatch.setattr(backbone_module, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(timm, "create_model", cached_hub)
    bb = build_backbone(BackboneConfig(pretrained=True))
    assert bb.weights_hash == "timm:mobilenetv4_conv_small.e2400_r224_in1k"


def test_random_init_is_the_same_everywhere_and_leaves_the_random_stream_alone():
    torch.manual_seed(1)
    a = build_backbone(BackboneConfig(pretrained=False))
    drawn_after_build = torch.rand(3)
    torch.manual_seed(2)
    b = build_backbone(BackboneConfig(pretrained=False))
    torch.manual_seed(1)
    assert torch.equal(drawn_after_build, torch.rand(3))  # building drew nothing from the caller's stream
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
