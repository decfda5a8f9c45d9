"""Frozen-backbone feature stage: normalisation, fp16 fidelity, skipped no-face frames, padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.backbone import BackboneConfig, build_backbone
from pipeline.cache.schema import frame_schema, frames_table
from pipeline.features import FeatureConfig, cosine_per_frame, extract_maps

FP32 = FeatureConfig(dtype="float32", autocast="off")


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(BackboneConfig(pretrained=False))


@pytest.fixture(scope="module")
def crops():
    # smooth random images: closer to faces than white noise
    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.integers(0, 256, (6, 3, 224, 224), dtype=np.uint8)).float()
    return torch.nn.functional.avg_pool2d(noise, 9, 1, 4).round().to(torch.uint8).numpy()


def test_maps_use_the_backbone_normalisation(backbone, crops):
    s8, s16 = extract_maps(crops, backbone, FP32)
    assert s8.shape == (6, 64, 28, 28) and s16.shape == (6, 96, 14, 14)
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        ref = backbone.frozen((torch.from_numpy(crops).float() / 255 - mean) / std)
    np.testing.assert_allclose(s8, ref[0].numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(s16, ref[1].numpy(), rtol=1e-3, atol=1e-3)


def test_stored_float16_maps_keep_cosine_0999(backbone, crops):
    ref = extract_maps(crops, backbone, FP32)
    stored = extract_maps(crops, backbone, FeatureConfig(batch_size=4))  # default: fp16 (+ bf16 where native)
    for got, want in zip(stored, ref, strict=True):
        assert got.dtype == np.float16
        assert cosine_per_frame(got, want).min() >= 0.999
    forced_bf16 = extract_maps(crops, backbone, FeatureConfig(autocast="bf16"))
    for got, want in zip(forced_bf16, ref, strict=True):
        assert cosine_per_frame(got, want).min() >= 0.999


def test_bytes_per_frame_halve_with_float16(backbone, crops):
    maps16 = extract_maps(crops[:2], backbone, FeatureConfig(autocast="off"))
    maps32 = extract_maps(crops[:2], backbone, FP32)
    per_frame16 = sum(m[0].nbytes for m in maps16)
    assert per_frame16 * 2 == sum(m[0].nbytes for m in maps32)
    assert per_frame16 == 2 * sum(int(np.prod(s)) for s in backbone.boundary_shapes)
    # the row of a shard holds about that many bytes before compression
    table = frames_table(
        frame_schema(backbone.boundary_shapes),
        np.arange(2),
        np.ones(2, bool),
        np.zeros((2, 4)),
        np.ones(2),
        np.zeros((2, 10)),
        ["detected"] * 2,
        maps16,
    )
    assert per_frame16 <= table.nbytes / 2 <= per_frame16 + 200


class Counting:
    """The backbone, recording the batch size of every call of its frozen part in `calls`."""

    def __init__(self, backbone, calls: list[int]):
        frozen = backbone.frozen
        self.frozen = lambda x: calls.append(len(x)) or frozen(x)
        self.frozen.parameters = frozen.parameters  # the device is read from the parameters
        self.mean, self.std, self.cached_shapes = backbone.mean, backbone.std, backbone.cached_shapes


def test_frames_without_a_face_skip_the_backbone(backbone, crops):
    calls: list[int] = []
    counting = Counting(backbone, calls)
    face = np.array([True, False, True, False, False, True])
    s8, s16 = extract_maps(crops, counting, FeatureConfig(batch_size=2, autocast="off", pad_to=1), face=face)
    assert calls == [2, 1]  # three face rows in batches of two
    assert not s8[~face].any() and not s16[~face].any()
    assert all(np.abs(s8[i]).sum() > 0 for i in np.flatnonzero(face))
    full = extract_maps(crops, backbone, FeatureConfig(autocast="off"))
    np.testing.assert_allclose(s16[face], full[1][face], rtol=1e-2, atol=1e-2)
    assert not extract_maps(crops, counting, FeatureConfig(), face=np.zeros(6, bool))[0].any()


def test_short_batches_are_padded_to_a_few_shapes_with_the_same_maps(backbone, crops):
    calls: list[int] = []
    counting = Counting(backbone, calls)
    face = np.array([True, True, True, False, True, True])  # 5 rows
    padded = extract_maps(crops, counting, FeatureConfig(batch_size=4, pad_to=2, autocast="off"), face=face)
    assert calls == [4, 2]  # 4 rows, then 1 row padded to 2
    calls.clear()
    plain = extract_maps(crops, counting, FeatureConfig(batch_size=4, pad_to=1, autocast="off"), face=face)
    assert calls == [4, 1]
    for a, b in zip(padded, plain, strict=True):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), rtol=1e-3, atol=1e-3)
        assert not a[~face].any()
