"""The backbone split: frozen part + tail equal timm's features_only model; random init."""

import timm
import torch

from model.backbone import OUT_INDICES, RANDOM_INIT, BackboneConfig, build_backbone


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


def test_frozen_part_stays_frozen(backbone):
    backbone.train()
    assert not backbone.frozen.training and backbone.tail.training
    assert not any(p.requires_grad for p in backbone.frozen.parameters())
    assert all(p.requires_grad for p in backbone.tail.parameters())
    assert not any(m.training for m in backbone.frozen.modules())


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
