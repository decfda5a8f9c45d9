"""The backbone spec remembered per machine: the same as a built one, built again whenever anything it
follows from changes or the memo cannot be read, and never needed for a spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import model.backbone
from model.backbone import build_backbone
from model.backbone_config import BackboneConfig
from pipeline.cache.backbone_spec import MEMO_VAR, backbone_spec, forget, memo_dir, memo_key
from pipeline.cache.spec import make_spec, spec_hash

SMALL = BackboneConfig(input_size=112)  # what the spec follows from is the same at any size


@pytest.fixture
def builds(monkeypatch):
    """The backbones built, by config."""
    built: list[BackboneConfig] = []

    def counted(cfg: BackboneConfig):
        built.append(cfg)
        return build_backbone(cfg)

    monkeypatch.setattr(model.backbone, "build_backbone", counted)
    return built


def test_a_remembered_spec_is_the_built_one_and_needs_no_build(tmp_path, builds):
    first = backbone_spec(SMALL, tmp_path)
    second = backbone_spec(SMALL, tmp_path)
    assert builds == [SMALL]  # the second came from the memo
    built = build_backbone(SMALL).spec()
    assert first == built and second == built
    faces = {"mode": "detect"}
    assert spec_hash(make_spec(second, "float16", faces)) == spec_hash(make_spec(built, "float16", faces))
    assert [p.name for p in (tmp_path / "backbone-specs").iterdir()] == [f"{memo_key(SMALL)}.json"]


def test_every_setting_and_the_weights_file_make_their_own_key(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x" * 10)
    variants = [
        SMALL,
        replace(SMALL, input_size=224),
        replace(SMALL, trainable_blocks=3),
        replace(SMALL, name="mobilenetv4_conv_medium"),
        replace(SMALL, pretrained=True, weights=str(weights)),
        replace(SMALL, channels_last=False),
        replace(SMALL, weights=str(weights)),
    ]
    keys = [memo_key(v) for v in variants]
    assert None not in keys and len(set(keys)) == len(keys)
    before = memo_key(variants[-1])
    os.utime(weights, ns=(1, 1))  # a new file under the same name
    assert memo_key(variants[-1]) != before
    weights.write_bytes(b"y" * 11)
    assert memo_key(variants[-1]) not in (before, None)
    # another file of the same size copied over it with its modification time kept (`cp -p`, `rsync -a`)
    stat, before = weights.stat(), memo_key(variants[-1])
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"z" * 11)
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    other.replace(weights)
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert memo_key(variants[-1]) not in (before, None)
    assert memo_key(replace(SMALL, weights=str(tmp_path / "missing.pth"))) is None
    assert memo_key(replace(SMALL, pretrained=True)) is None  # the hub's: built, so its reach is checked


def test_a_forgotten_spec_is_built_again(tmp_path, builds):
    assert not forget(SMALL, tmp_path)  # nothing remembered yet
    backbone_spec(SMALL, tmp_path)
    assert forget(SMALL, tmp_path) and not list((tmp_path / "backbone-specs").iterdir())
    backbone_spec(SMALL, tmp_path)
    assert builds == [SMALL, SMALL]
    assert not forget(replace(SMALL, pretrained=True), tmp_path)  # the hub's is never remembered


def test_an_unreadable_memo_is_built_again_and_written_over(tmp_path, builds):
    file = tmp_path / "backbone-specs" / f"{memo_key(SMALL)}.json"
    file.parent.mkdir(parents=True)
    for broken in ("{not json", json.dumps({"backbone": "another"})):
        file.write_text(broken)
        builds.clear()
        assert backbone_spec(SMALL, tmp_path) == build_backbone(SMALL).spec()
        assert builds == [SMALL]
        assert json.loads(file.read_text())["backbone"] == SMALL.name


def test_where_nothing_can_be_remembered_the_spec_is_built(tmp_path, builds):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert backbone_spec(SMALL, blocked) == build_backbone(SMALL).spec()
    assert backbone_spec(SMALL, blocked) == build_backbone(SMALL).spec()
    assert builds == [SMALL, SMALL]


def test_the_memo_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(MEMO_VAR, str(tmp_path / "memo"))
    assert memo_dir() == tmp_path / "memo"
    monkeypatch.delenv(MEMO_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert memo_dir() == tmp_path / "xdg" / "lwaffect"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert memo_dir() == Path.home() / ".cache" / "lwaffect"


def test_the_extraction_driver_imports_no_torch():
    # the driver only describes the run: its imports take no CPU from Ray and the stage workers starting
    code = (
        "import sys, jobs.extract.driver, jobs.cli.pipeline; "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    repo = Path(__file__).parents[3]
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert "'jobs'" in loaded.stdout and "'pipeline'" in loaded.stdout
    for heavy in ("torch", "timm", "torchvision", "facenet_pytorch"):
        assert f"'{heavy}'" not in loaded.stdout


def test_a_remembered_spec_is_read_without_loading_torch(tmp_path):
    # where the memo has the spec, nothing on the way to it may import torch or timm
    code = (
        "import sys; from model.backbone_config import BackboneConfig; "
        "from pipeline.cache.backbone_spec import backbone_spec; "
        "spec = backbone_spec(BackboneConfig(input_size=112)); "
        "print(spec['boundary'], 'torch' in sys.modules, 'timm' in sys.modules)"
    )
    repo = Path(__file__).parents[3]
    env = {**os.environ, MEMO_VAR: str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, check=True
        )
        for _ in range(2)
    ]
    first, second = (r.stdout.split("]] ") for r in runs)
    assert first[0] == second[0]  # the same shapes
    assert first[1].split() == ["True", "True"]  # built
    assert second[1].split() == ["False", "False"]  # read
