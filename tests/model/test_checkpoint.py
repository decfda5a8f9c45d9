"""Checkpoints rebuild the model from the file alone and refuse the wrong task or cache."""

import json

import pytest
import torch
from safetensors.torch import save_file

from jobs.train.state import save_checkpoint
from model import __version__
from model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta
from model.configs import build_model
from pipeline.temporal.predictor import check_cache_spec
from tests.helpers import random_maps

CACHE_SPEC = {  # as the feature cache records it
    "backbone": "mobilenetv4_conv_small",
    "weights_hash": "random-init",
    "input_size": 224,
    "boundary": {"s8": [64, 28, 28], "s16": [96, 14, 14]},
    "dtype": "float16",
    "faces": {"min_face_size": 40},
    "version": "0.0.1",
}


@pytest.fixture(scope="module")
def saved(backbone, tmp_path_factory):
    torch.manual_seed(3)
    model = build_model("tam_s2", "au", backbone=backbone, num_frames=8).eval()
    model.standardise.fit([(torch.rand(c), torch.rand(c) + 0.5) for c in (64, 96)])  # kept in the file
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    meta = {"metric": {"name": "mean F1", "value": 0.41}, "au_thresholds": [0.4] * 12, "extra": {"epoch": 3}}
    save_checkpoint(path, model, meta)
    return model, path


def test_round_trip_reproduces_outputs_exactly(backbone, saved):
    model, path = saved
    loaded, meta = load_checkpoint(path, expect_task="au")
    check_cache_spec(meta, CACHE_SPEC)
    assert not loaded.training and loaded.num_frames == 8  # rebuilt from the file, not the registry
    maps = random_maps(backbone, 2, 8, seed=5)
    with torch.no_grad():
        assert torch.equal(loaded(maps), model(maps))
    assert meta["task"] == "au" and meta["model_config"] == "tam_s2"
    assert meta["lwaffect_version"] == __version__
    assert meta["au_thresholds"] == [0.4] * 12 and meta["metric"]["value"] == 0.41
    assert meta["extra"] == {"epoch": 3}
    assert meta["backbone"]["weights_hash"] == "random-init"
    assert meta["backbone"]["boundary"] == [[64, 28, 28], [96, 14, 14]]
    assert meta["backbone"]["mean"] == list(backbone.mean)
    assert read_checkpoint_meta(path) == meta


def test_other_task_is_refused(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="is a 'au' model, not 'va'"):
        load_checkpoint(path, expect_task="va")


@pytest.mark.parametrize(
    "change,field",
    [
        ({"weights_hash": "sha256:0123456789abcdef"}, "weights_hash"),
        (
            {"input_size": 256},
            "input size 224 px .checkpoint. vs input size 256 px .cache.: extract a cache "
            "with --input-size 224",
        ),
        ({"trainable_blocks": 3}, "trainable blocks N = 2 .checkpoint. vs trainable blocks N = 3 .cache."),
        ({"backbone": "mobilenetv4_conv_medium"}, "backbone"),
        ({"boundary": {"s8": [64, 28, 28], "s16": [960, 7, 7]}}, "boundary"),
    ],
)
def test_incompatible_cache_is_refused(saved, change, field):
    _, path = saved
    with pytest.raises(CheckpointError, match=f"does not fit the feature cache.*{field}"):
        check_cache_spec(read_checkpoint_meta(path), {**CACHE_SPEC, **change})


def test_folder_checkpoint(backbone, tmp_path):
    model = build_model("tam_s1", "emi", backbone=backbone, num_frames=4).eval()
    save_checkpoint(tmp_path, model, {})
    assert (tmp_path / "model.safetensors").is_file()
    loaded, meta = load_checkpoint(tmp_path, expect_task="emi")
    maps = random_maps(backbone, 1, 4)
    with torch.no_grad():
        assert torch.equal(loaded(maps), model(maps))


def test_meta_of_another_task_is_refused_on_save(backbone, tmp_path):
    model = build_model("tam_s1", "va", backbone=backbone, num_frames=4)
    with pytest.raises(ValueError, match="task 'au'"):
        save_checkpoint(tmp_path / "x.ckpt", model, {"task": "au"})
    assert not list(tmp_path.iterdir())


def test_files_that_are_not_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="is not a safetensors checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")
    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="not an lwaffect checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    doc = {"format": "lwaffect-checkpoint", "format_version": 99}
    save_file({"w": torch.zeros(2)}, tmp_path / "future.safetensors", metadata={"lwaffect": json.dumps(doc)})
    with pytest.raises(CheckpointError, match="upgrade lwaffect"):
        load_checkpoint(tmp_path / "future.safetensors")


def test_checkpoint_from_before_map_standardisation_loads_as_identity(saved, tmp_path):
    from safetensors import safe_open

    model, path = saved
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("standardise.")}
    older = tmp_path / "older.safetensors"
    save_file(tensors, str(older), metadata=meta)
    loaded, _ = load_checkpoint(older)
    assert torch.equal(loaded.standardise.mean0, torch.zeros(64)) and torch.equal(
        loaded.standardise.std1, torch.ones(96)
    )
    tensors.pop(next(k for k in tensors if k.startswith("head.")))
    save_file(tensors, str(older), metadata=meta)
    with pytest.raises(CheckpointError, match="missing"):  # any other missing tensor is still an error
        load_checkpoint(older)
