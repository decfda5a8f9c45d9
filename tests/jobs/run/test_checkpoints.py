"""Which model a run predicts with: reuse, resume, refuse or retrain a model in OUT/checkpoints (fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import jobs.run.checkpoints as checkpoints
from jobs.cli import app
from jobs.run.config import RunConfig, RunError
from jobs.train.state import config_dict
from jobs.train.trainer import BEST, LAST, LOG


def fake_training(monkeypatch, tmp_path):
    """`train` writes best/last/log like the real one; `read_checkpoint_meta` reads what it wrote."""
    calls = []
    metas: dict[Path, dict] = {}

    def train(tcfg, say):
        calls.append(tcfg)
        tcfg.output.mkdir(parents=True, exist_ok=True)
        (tcfg.output / BEST).write_bytes(b"model")
        (tcfg.output / LOG).write_text("{}\n")
        torch.save({"state": {"epoch": tcfg.epochs, "stopped": False}}, tcfg.output / LAST)
        metas[tcfg.output / BEST] = {"train_config": config_dict(tcfg), "epoch": 2, "cache_spec": {"a": 1}}
        return type("R", (), {"best_metric": 0.5, "best_epoch": 2, "checkpoint": tcfg.output / BEST,
                              "resumed_from": 0})()  # fmt: skip

    monkeypatch.setattr(checkpoints, "train", train)
    monkeypatch.setattr(checkpoints, "read_checkpoint_meta", lambda path: metas[Path(path)])
    return calls


def cfg_for(tmp_path, **kw) -> RunConfig:
    options = (("epochs", 3), ("seq_len", 8), ("lr", 1e-3))
    return RunConfig(
        input=tmp_path / "in", tasks=("va",), output=tmp_path / "out", train_options=options, **kw
    )


def test_a_finished_model_with_the_same_settings_is_reused(monkeypatch, tmp_path):
    calls = fake_training(monkeypatch, tmp_path)
    first = checkpoints.model_for(cfg_for(tmp_path), "va", {"a": 1}, say=lambda line: None)
    assert first.source == "trained" and len(calls) == 1
    said = []
    again = checkpoints.model_for(cfg_for(tmp_path), "va", {"a": 1}, say=said.append)
    assert again.source == "reused" and len(calls) == 1  # not trained again
    assert any("reusing" in line for line in said)


def test_an_unfinished_run_is_resumed_by_training(monkeypatch, tmp_path):
    calls = fake_training(monkeypatch, tmp_path)
    checkpoints.model_for(cfg_for(tmp_path), "va", {"a": 1}, say=lambda line: None)
    out = cfg_for(tmp_path).checkpoint_dir("va")
    torch.save({"state": {"epoch": 1, "stopped": False}}, out / LAST)  # cut short after epoch 1
    checkpoints.model_for(cfg_for(tmp_path), "va", {"a": 1}, say=lambda line: None)
    assert len(calls) == 2 and calls[1].output == out  # train() goes on from last.pt


def test_other_settings_or_another_cache_are_refused_unless_retrain(monkeypatch, tmp_path):
    calls = fake_training(monkeypatch, tmp_path)
    checkpoints.model_for(cfg_for(tmp_path), "va", {"a": 1}, say=lambda line: None)
    other = RunConfig(input=tmp_path / "in", tasks=("va",), output=tmp_path / "out",
                      train_options=(("epochs", 3), ("seq_len", 16), ("lr", 1e-3)))  # fmt: skip
    with pytest.raises(RunError, match=r"seq_len: 8 \(saved\) vs 16 \(now\).*--retrain"):
        checkpoints.model_for(other, "va", {"a": 1}, say=lambda line: None)
    with pytest.raises(RunError, match=r"cache a: 1 -> 2"):
        checkpoints.model_for(cfg_for(tmp_path), "va", {"a": 2}, say=lambda line: None)
    retrained = checkpoints.model_for(
        RunConfig(**{**other.__dict__, "retrain": True}), "va", {"a": 1}, say=lambda line: None
    )
    assert retrained.source == "trained" and len(calls) == 2 and calls[1].seq_len == 16


def test_final_trains_on_train_and_validation_for_the_chosen_epochs(monkeypatch, tmp_path):
    calls = fake_training(monkeypatch, tmp_path)
    model = checkpoints.model_for(cfg_for(tmp_path, final=True), "va", {"a": 1}, say=lambda line: None)
    assert [c.final for c in calls] == [False, True]
    assert calls[1].epochs == 2 and calls[1].output == cfg_for(tmp_path).checkpoint_dir("va") / "final"
    assert model.path == calls[1].output / BEST


def test_the_cli_passes_task_lists_and_training_flags_on(monkeypatch, tmp_path):
    import jobs.run.driver as driver

    seen = []

    def fake_run(cfg, say, ray_start=None):
        seen.append(cfg)
        raise ValueError("stopped here")

    monkeypatch.setattr(driver, "run", fake_run)
    args = ["run", "--input", str(tmp_path), "--task", "va, au", "--epochs", "3", "--seq-len", "8",
            "--train-stride", "4", "--lr", "0.01", "--retrain", "--final", "--trainable-blocks", "3",
            "--input-size", "112", "--backbone-bn", "frozen"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "lwaffect run: stopped here" in result.output
    cfg = seen[0]
    assert cfg.tasks == ("va", "au") and cfg.retrain and cfg.final
    options = dict(cfg.train_options)
    assert (options["epochs"], options["seq_len"], options["stride"], options["lr"]) == (3, 8, 4, 0.01)
    train_cfg = checkpoints.train_config(cfg, "au")
    assert train_cfg.task == "au" and train_cfg.stride == 4 and train_cfg.lr == 0.01
    assert (cfg.trainable_blocks, cfg.input_size) == (3, 112)  # the run's extraction is made with these
    assert (train_cfg.trainable_blocks, train_cfg.input_size, train_cfg.backbone_bn) == (3, 112, "frozen")
    assert train_cfg.output == Path("out") / "checkpoints" / "au" and train_cfg.cache == str(
        Path("out") / "cache"
    )
