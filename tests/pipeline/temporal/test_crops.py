"""Training and prediction from a crop cache: the window loader yields crops, `CropMaps` turns them into the
maps the extraction would have cached (zeros where no face), a predictor reads through it, and the
standardiser's statistics come from a sample of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.backbone import BackboneConfig, build_backbone
from pipeline.cache.crops import CropCodec, encode_crops
from pipeline.cache.read import open_cache
from pipeline.cache.schema import crop_schema, frames_table
from pipeline.cache.spec import make_spec
from pipeline.cache.write import CacheWriter
from pipeline.features import FeatureConfig, cosine_per_frame, extract_maps
from pipeline.temporal.augment import AugmentConfig
from pipeline.temporal.crops import CropMaps, SampledMaps
from pipeline.temporal.stats import map_statistics
from pipeline.temporal.windows import WindowConfig, WindowDataset, window_loader
from tests.helpers import labels_for
from tests.pipeline.cache.test_crops import face_like

SIZE = 64  # the backbone runs at any size; 64 px keeps these tests fast


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(BackboneConfig(input_size=SIZE))


@pytest.fixture(scope="module")
def crop_cache(backbone, tmp_path_factory):
    """A crop cache of two subjects (20 and 12 frames); frames 3 and 4 of `a` have no face."""
    location = str(tmp_path_factory.mktemp("crops") / "cache")
    spec = make_spec(backbone.spec(), "float16", {"mode": "detect"}, crops=CropCodec().spec())
    writer = CacheWriter(location, spec)
    for subject, n in (("a", 20), ("b", 12)):
        crops = face_like(n, size=SIZE, seed=n)
        face = np.ones(n, bool)
        face[3:5] = subject != "a"
        table = frames_table(crop_schema(), np.arange(n), face, np.zeros((n, 4)), np.ones(n),
                             np.zeros((n, 5, 2)), np.where(face, "detected", "none"),
                             (encode_crops(crops, face),))  # fmt: skip
        writer.write_subject(subject, subject, table)
    return open_cache(location)


def test_the_loader_yields_crops_with_faceless_frames_held(crop_cache):
    labels = {s: labels_for(np.zeros((crop_cache.num_frames(s), 2))) for s in ("a", "b")}
    data = WindowDataset(crop_cache, labels, "va", WindowConfig(seq_len=8, stride=8, shuffle=False))
    (crops,), targets, mask = next(iter(window_loader(data, batch_size=2)))
    assert crops.shape == (2, 8, 3, SIZE, SIZE) and crops.dtype == torch.uint8
    assert targets.shape == (2, 8, 2) and mask.shape == (2, 8)
    # frames 3 and 4 of `a` have no face: they hold their nearest face frame's crop (2 and 5)
    torch.testing.assert_close(crops[0, 3], crops[0, 2])
    torch.testing.assert_close(crops[0, 4], crops[0, 5])
    assert not mask[0, 3:5].any() and mask[0, :3].all()


def test_crop_maps_are_the_extraction_maps_and_blank_crops_give_zeros(backbone, crop_cache):
    crops = crop_cache.read("a").maps[0]  # (20, 3, S, S) uint8, frames 3 and 4 blank
    face = crop_cache.read("a").face
    want = extract_maps(crops, backbone, FeatureConfig(), face=face)  # what a map cache would hold
    got = CropMaps(backbone)(torch.from_numpy(crops)[None])  # ((1, 20, C, H, W), ...)
    assert [tuple(m.shape) for m in got] == [(1, 20, *s) for s in backbone.boundary_shapes]
    for g, w in zip(got, want, strict=True):
        g = g[0].numpy()
        assert not g[~face].any()  # no face: zeros, as the map cache holds them
        assert cosine_per_frame(g[face], w[face].astype(np.float32)).min() > 0.999


def test_crop_maps_run_a_folded_copy_and_leave_the_backbone_as_it_was(backbone):
    # prediction hands CropMaps the model's own backbone: folding must not change it
    crop_maps = CropMaps(backbone)
    assert crop_maps.frozen is not backbone.frozen
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in crop_maps.frozen.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.frozen.modules())


def test_augmented_maps_differ_and_prediction_is_never_augmented(backbone, crop_cache):
    crops = torch.from_numpy(crop_cache.read("b").maps[0])[None]  # (1, 12, 3, S, S)
    maps = CropMaps(backbone, augment=AugmentConfig())
    plain = maps(crops)
    torch.manual_seed(0)
    augmented = maps(crops, train=True)
    torch.testing.assert_close(maps(crops), plain)  # train=False: no augmentation
    assert not torch.allclose(augmented[0], plain[0])


def test_statistics_come_from_a_sample_of_the_crops(backbone, crop_cache):
    crop_maps = CropMaps(backbone)
    sampled = SampledMaps(crop_cache, crop_maps, runs=2, run_frames=4)
    view = sampled.read("a")
    assert view.face.all() and len(view.face) == 7  # rows 0-2 and 16-19: faceless row 3 left out
    stats = map_statistics(sampled, ["a", "b"])
    assert [tuple(m.shape) for m, _ in stats] == [(s[0],) for s in backbone.boundary_shapes]
    assert all(torch.isfinite(m).all() and (s > 0).all() for m, s in stats)


def test_a_subject_without_a_face_gives_no_sampled_maps_of_the_right_shapes(backbone, crop_cache):
    class Faceless:  # the crop cache with every face flag off
        def num_frames(self, subject):
            return crop_cache.num_frames(subject)

        def read(self, subject, start=0, stop=None):
            part = crop_cache.read(subject, start, stop)
            part.face = np.zeros_like(part.face)
            return part

    view = SampledMaps(Faceless(), CropMaps(backbone)).read("b")
    assert len(view.face) == 0
    assert [m.shape for m in view.maps] == [(0, *s) for s in backbone.boundary_shapes]
