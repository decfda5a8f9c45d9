"""The backbone cut at N trainable blocks: frozen part + tail against timm, the cached maps per N, the
model's tail, the tubelet patches at 112 and 224 px, the tail's BatchNorm setting, and older checkpoints."""

import json

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import save

from jobs.train.state import save_checkpoint
from model.backbone import OUT_INDICES, BackboneConfig, build_backbone
from model.checkpoint import META_KEY, CheckpointError, load_checkpoint, read_checkpoint_meta
from model.configs import build_model, get_config, resolve_patches
from model.split import BlockSplit
from model.tam import LevelConfig
from pipeline.temporal.predictor import check_cache_spec
from tests.helpers import random_maps

# the contract's cached maps at 224 px per N
CACHED_224 = {
    0: (("s8", (64, 28, 28)), ("s16", (96, 14, 14)), ("s32", (960, 7, 7))),
    1: (("s8", (64, 28, 28)), ("s16", (96, 14, 14)), ("block3", (128, 7, 7))),
    2: (("s8", (64, 28, 28)), ("s16", (96, 14, 14))),
    3: (("s8", (64, 28, 28)),),
    4: (("block0", (32, 56, 56)),),
    5: (("stem", (32, 112, 112)),),
}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, classifier_state):
    """A classifier's weights with BatchNorm statistics far from 0 / 1, so that eval mode matters."""
    g = torch.Generator().manual_seed(3)
    state = {
        k: (torch.rand(v.shape, generator=g) * 0.5 + 0.5 if k.endswith("running_var") else
            torch.randn(v.shape, generator=g) * 0.1 if k.endswith("running_mean") else v)
        for k, v in classifier_state.items()
    }  # fmt: skip
    path = tmp_path_factory.mktemp("weights") / "classifier.pth"
    torch.save(state, path)
    return path, state


def reference(state, images):
    ref = timm.create_model("mobilenetv4_conv_small", features_only=True, out_indices=OUT_INDICES).eval()
    ref.load_state_dict({k: v for k, v in state.items() if k in ref.state_dict()})
    with torch.no_grad():
        return ref(images)


@pytest.mark.parametrize("n,size", [(n, 224) for n in range(6)] + [(0, 112), (3, 112), (5, 112)])
def test_frozen_then_tail_equals_timm_features_for_each_n(weights_file, n, size):
    path, state = weights_file
    bb = build_backbone(BackboneConfig(weights=str(path), trainable_blocks=n, input_size=size)).eval()
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        cached = bb.frozen(images)
        maps = bb.tail(cached)
    assert bb.cached_names == bb.split.cached_names and len(cached) == len(bb.cached_names)
    assert tuple(tuple(m.shape[1:]) for m in cached) == bb.cached_shapes
    if size == 224:
        assert tuple(zip(bb.cached_names, bb.cached_shapes, strict=True)) == CACHED_224[n]
    assert len(bb.tail.blocks) == n and not any(p.requires_grad for p in bb.frozen.parameters())
    for got, want in zip(maps, reference(state, images), strict=True):
        assert got is not None
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_the_split_names_what_enters_the_first_trainable_block():
    split = BlockSplit(5, (2, 3, 5), 1)
    assert split.first == 4 and split.cached_positions == (2, 3, 4)
    assert [BlockSplit(5, (2, 3, 5), n).cached_names for n in range(6)] == [
        tuple(name for name, _ in CACHED_224[n]) for n in range(6)
    ]
    with pytest.raises(ValueError, match="trainable blocks must be 0 to 5"):
        BlockSplit(5, (2, 3, 5), 6)


@pytest.mark.parametrize(
    "n,config,blocks",
    [(0, "tam_s1", None), (2, "tam_local", None), (3, "tam_local", None), (4, "tam_local", 1), (5, "tam_s2", 5),
     (2, "tam_s1", 2), (3, "tam_s2", 3)],
)  # fmt: skip
def test_the_model_keeps_the_tail_only_as_far_as_its_levels_read(n, config, blocks):
    backbone = build_backbone(BackboneConfig(trainable_blocks=n))
    model = build_model(config, "va", backbone=backbone, num_frames=4)
    assert (None if model.tail is None else len(model.tail.blocks)) == blocks
    maps = random_maps(backbone, 2, 4)
    assert model(maps).shape == (2, 4, 2)
    if model.tail is not None:  # the gradient reaches the trainable blocks
        model(maps).sum().backward()
        assert model.tail.blocks[0].parameters().__next__().grad is not None


def test_patches_follow_the_map_sizes_at_112_and_224():
    patches = {}
    for size in (112, 224):
        model = build_model("tam_s3", "va", BackboneConfig(input_size=size), num_frames=4)
        patches[size] = [level.patch for level in model.config.levels]
        grids = [level.grid for level in model.tam.levels]
        assert all(3 <= g[0] <= 14 for g in grids)
    assert patches == {224: [4, 2, 1], 112: [2, 1, 1]}  # 28/4, 14/2, 7/1 and 14/2, 7/1, 4/1


def test_a_map_no_patch_divides_is_a_clear_error():
    config = get_config("tam_s3")
    with pytest.raises(
        ValueError, match=r"'tam_s3', level 0 \(s8: a 17x17 map at input size 136\).*--input-size"
    ):
        resolve_patches(config, ((64, 17, 17), (96, 9, 9), (960, 5, 5)), 136)
    levels = (LevelConfig(source=0, patch=4),)  # a fixed patch made for 224 px
    with pytest.raises(ValueError, match=r"'tam_s1', level 0 \(s8: a 14x14 map at input size 112\): patch 4"):
        build_model("tam_s1", "va", BackboneConfig(input_size=112), levels=levels)


@pytest.mark.parametrize("setting,changes", [("train", True), ("frozen", False)])
def test_the_tails_batchnorm_statistics_follow_the_setting(setting, changes):
    backbone = build_backbone(BackboneConfig(trainable_blocks=3))
    model = build_model("tam_s1", "va", backbone=backbone, num_frames=4)
    model.backbone_bn = setting
    model.train()
    norms = [m for m in model.tail.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    model(random_maps(backbone, 2, 4))
    assert all(m.training == changes for m in norms) and model.tam.training
    moved = any(not torch.equal(a, m.running_mean) for a, m in zip(before, norms, strict=True))
    assert moved == changes
    assert all(p.requires_grad for m in norms for p in m.parameters())  # scale and shift still train


def test_a_checkpoint_of_another_n_is_refused_naming_both(tmp_path):
    backbone = build_backbone(BackboneConfig(trainable_blocks=3))
    path = save_checkpoint(tmp_path / "n3.safetensors", build_model("tam_s1", "va", backbone=backbone), {})
    cache_spec = build_backbone(BackboneConfig()).spec()  # a cache made with N = 2
    with pytest.raises(
        CheckpointError, match="trainable blocks N = 3 .checkpoint. vs trainable blocks N = 2 .cache."
    ):
        check_cache_spec(read_checkpoint_meta(path), cache_spec)
    check_cache_spec(read_checkpoint_meta(path), backbone.spec())  # the same N fits
    model, doc = load_checkpoint(path)
    assert doc["backbone"]["trainable_blocks"] == 3 and len(model.tail.blocks) == 3


def test_a_checkpoint_without_n_is_n_2_and_loads_as_before(tmp_path, backbone):
    model = build_model("tam_s2", "va", backbone=backbone, num_frames=4).eval()
    path = save_checkpoint(tmp_path / "new.safetensors", model, {})
    with safe_open(str(path), framework="pt") as f:
        doc = json.loads(f.metadata()[META_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for key in ("trainable_blocks", "cached_names", "map_shapes"):  # what a checkpoint made before had not
        del doc["backbone"][key]
    for level in doc["model"]["levels"]:
        assert level["patch"] is not None  # the patches chosen are recorded
    old = tmp_path / "old.safetensors"
    old.write_bytes(save(tensors, metadata={META_KEY: json.dumps(doc)}))
    loaded, _ = load_checkpoint(old)
    assert loaded.cached_names == ("s8", "s16") and len(loaded.tail.blocks) == 2
    maps = random_maps(backbone, 2, 4)
    torch.testing.assert_close(loaded(maps), model(maps))
    check_cache_spec(read_checkpoint_meta(old), backbone.spec())  # fits a cache of N = 2
