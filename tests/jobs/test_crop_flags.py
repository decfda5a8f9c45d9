"""`--cache-kind` and `--augment` reach what the commands build: extract's config, run's config and its
extraction, train's config; without `--cache-kind` the kind follows the trainable blocks (crops from 4)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import jobs.extract.driver as extract_driver
import jobs.run.driver as run_driver
import jobs.train.trainer as trainer
from jobs.cli import app
from jobs.run.config import RunConfig


def test_extract_passes_the_cache_kind(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        extract_driver,
        "extract",
        lambda cfg, **kw: seen.append(cfg) or SimpleNamespace(failures=[], exit_code=0),
    )
    args = ["extract", "--input", str(tmp_path), "--cache", str(tmp_path / "c"), "--cache-kind", "crops"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen[0].cache_kind == "crops" and seen[0].crops.spec() == {
        "codec": "jpeg",
        "quality": 90,
        "subsampling": 0,
    }


@pytest.mark.parametrize("blocks, given, kind", [
    ("2", None, "maps"), ("3", None, "maps"), ("4", None, "crops"), ("5", None, "crops"),
    ("5", "maps", "maps"), ("2", "crops", "crops"),
])  # fmt: skip
def test_extract_caches_crops_from_4_trainable_blocks_unless_told(tmp_path, monkeypatch, blocks, given, kind):
    seen = []
    monkeypatch.setattr(
        extract_driver,
        "extract",
        lambda cfg, **kw: seen.append(cfg) or SimpleNamespace(failures=[], exit_code=0),
    )
    args = ["extract", "--input", str(tmp_path), "--cache", str(tmp_path / "c"), "--trainable-blocks", blocks]
    result = CliRunner().invoke(app, args + (["--cache-kind", given] if given else []))
    assert result.exit_code == 0, result.output
    assert seen[0].backbone.trainable_blocks == int(blocks) and seen[0].kind == kind
    assert ("maps outweigh the face crop" in result.output) == (kind == "maps" and int(blocks) >= 4)


@pytest.mark.parametrize("blocks, given, kind", [(2, None, "maps"), (4, None, "crops"), (5, "maps", "maps")])
def test_run_extracts_the_kind_its_n_says_unless_told(tmp_path, monkeypatch, blocks, given, kind):
    extracted = []
    report = SimpleNamespace(cached=[], skipped=[], frames=0, stages={})
    monkeypatch.setattr(extract_driver, "extract", lambda cfg, **kw: extracted.append(cfg) or report)
    cfg = RunConfig(input=tmp_path, tasks=("va",), trainable_blocks=blocks, cache_kind=given)
    run_driver.extract_stage(cfg, ["s"], lambda _: None)
    assert extracted[0].backbone.trainable_blocks == blocks and extracted[0].kind == kind


def test_run_passes_the_cache_kind_to_its_extraction_and_augment_to_training(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        run_driver,
        "run",
        lambda cfg, **kw: seen.append(cfg) or SimpleNamespace(summary=lambda: "", exit_code=0),
    )
    args = ["run", "--input", str(tmp_path), "--task", "va", "--cache-kind", "crops", "--augment", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = seen[0]
    assert cfg.cache_kind == "crops" and dict(cfg.train_options)["augment"] == "none"
    extracted = []
    report = SimpleNamespace(cached=[], skipped=[], frames=0, stages={})
    monkeypatch.setattr(extract_driver, "extract", lambda cfg, **kw: extracted.append(cfg) or report)
    run_driver.extract_stage(
        RunConfig(input=tmp_path, tasks=("va",), cache_kind="crops"), ["s"], lambda _: None
    )
    assert extracted[0].cache_kind == "crops" and extracted[0].subjects == ("s",)


def test_train_passes_augment(tmp_path, monkeypatch):
    seen = []

    def fake_train(cfg, **kw):
        seen.append(cfg)
        raise trainer.TrainError("stop here")

    monkeypatch.setattr(trainer, "train", fake_train)
    args = ["train", "--task", "va", "--input", str(tmp_path), "--cache", "c", "--output", str(tmp_path / "o"),
            "--augment", "standard"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "stop here" in result.output
    assert seen[0].augment == "standard"


@pytest.mark.parametrize("command", ["extract", "run", "train"])
def test_bad_choices_are_refused(tmp_path, command):
    flag = "--augment" if command == "train" else "--cache-kind"
    result = CliRunner().invoke(app, [command, "--input", str(tmp_path), flag, "jpegs"])
    assert result.exit_code == 1 and "'jpegs' is not one of" in result.output
