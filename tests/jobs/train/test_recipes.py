"""Training recipes: the registry, the seed's released settings, flags over a recipe, `--recipe` on the
command line of `train` and `run`, and no weight decay on norms and biases; the seed recipe's backbone cut (N = 5
at 112 px) reaching run's extraction and training, and train's refusal of a cache cut otherwise."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_args

import pytest
import torch
from typer.testing import CliRunner

import jobs.run.driver as run_driver
import jobs.train.trainer as train_job
from jobs.cli import app, options
from jobs.run import checkpoints
from jobs.run.config import RunConfig
from jobs.train.recipes import RECIPES, get_recipe, recipe_config, recipe_cut
from jobs.train.trainer import TrainConfig
from model.losses import loss_for

PLACES = dict(input=Path("in"), cache="cache", output=Path("out"))


def test_the_seed_recipe_holds_the_seed_papers_released_settings():
    cfg = recipe_config("seed", task="au", **PLACES)
    assert (cfg.recipe, cfg.config, cfg.seq_len, cfg.batch_size, cfg.lr, cfg.weight_decay) == (
        "seed", "tam_s1", 8, 128, 5e-4, 2e-5)  # fmt: skip
    assert (cfg.schedule, cfg.restart_steps, cfg.warmup, cfg.bf16) == ("restarts", 2000, 0.0, True)
    assert cfg.lr * cfg.min_lr_ratio == pytest.approx(1e-6)
    au = loss_for("au", **dict(cfg.loss_options))
    assert (au.kind, au.alpha, au.gamma) == ("focal", 0.75, 2.0)
    expr = loss_for("expr", **dict(recipe_config("seed", task="expr", **PLACES).loss_options))
    assert (expr.gamma, expr.label_smoothing) == (2.0, 0.1)
    assert loss_for("va", **dict(recipe_config("seed", task="va", **PLACES).loss_options)).mse_weight == 0


def test_the_default_recipe_is_what_a_plain_train_config_holds():
    # TrainConfig's defaults and the default recipe must not drift apart: `lwaffect train` without
    # --recipe and a TrainConfig built in code train the same way
    for task in ("va", "au", "expr", "ah", "emi"):
        assert recipe_config("default", task=task, **PLACES) == TrainConfig(
            task=task, **PLACES, **dict(dict(RECIPES["default"].tasks).get(task, ())),
            loss_options=dict(RECIPES["default"].losses).get(task, ()),
        )  # fmt: skip


def test_au_trains_on_local_reads_by_default_and_on_the_seeds_config_in_the_seed_recipe():
    assert recipe_config("default", task="au", **PLACES).config == "tam_local"
    assert {recipe_config("default", task=t, **PLACES).config for t in ("va", "expr", "ah", "emi")} == {
        "tam_s1"
    }
    assert recipe_config("seed", task="au", **PLACES).config == "tam_s1"
    assert recipe_config("default", task="au", **PLACES, config="tam_s3").config == "tam_s3"


def test_settings_given_win_over_the_recipe_and_none_counts_as_not_given():
    cfg = recipe_config("seed", task="au", **PLACES, lr=1e-2, batch_size=None, seq_len=16)
    assert (cfg.lr, cfg.batch_size, cfg.seq_len, cfg.weight_decay) == (1e-2, 128, 16, 2e-5)
    with pytest.raises(ValueError, match="known recipes: default, seed"):
        get_recipe("paper")
    assert get_args(options.RecipeName) == tuple(RECIPES)


def test_train_and_run_commands_pass_the_recipe_on(monkeypatch, tmp_path):
    seen = {}

    def fake_train(cfg, say):
        seen["train"] = cfg
        return train_job.TrainResult(
            best_metric=0.5, checkpoint=cfg.output / "b", epochs_run=1, wall_time_s=1
        )

    monkeypatch.setattr(train_job, "train", fake_train)
    base = ["train", "--task", "au", "--input", str(tmp_path), "--cache", "C", "--output", str(tmp_path)]
    result = CliRunner().invoke(app, [*base, "--recipe", "seed", "--lr", "0.002"])
    assert result.exit_code == 0, result.output
    cfg = seen["train"]
    assert (cfg.recipe, cfg.seq_len, cfg.batch_size, cfg.bf16, cfg.lr) == ("seed", 8, 128, True, 0.002)
    assert CliRunner().invoke(app, base).exit_code == 0 and seen["train"].recipe == "default"
    assert seen["train"].seq_len == RECIPES["default"].seq_len

    def fake_run(cfg, say, ray_start=None):
        seen["run"] = cfg
        raise ValueError("stop here")

    monkeypatch.setattr(run_driver, "run", fake_run)
    args = ["run", "--input", str(tmp_path), "--task", "au", "--recipe", "seed", "--batch-size", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "stop here" in result.output
    run_cfg: RunConfig = seen["run"]
    tcfg = checkpoints.train_config(run_cfg, "au")
    assert (tcfg.recipe, tcfg.seq_len, tcfg.batch_size, tcfg.schedule) == ("seed", 8, 4, "restarts")
    plain = checkpoints.train_config(dataclasses.replace(run_cfg, train_options=()), "au")
    assert plain.recipe == "default" and plain.seq_len == RECIPES["default"].seq_len


def test_norms_and_biases_never_decay():
    from pipeline.temporal.optim import param_groups

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    torch.nn.init.normal_(model[1].weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # only weight decay moves anything
    opt.step()
    after = model.state_dict()
    assert not torch.equal(after["0.weight"], before["0.weight"])  # a linear weight decays
    for key in ("0.bias", "1.weight", "1.bias"):
        assert torch.equal(after[key], before[key]), key


def test_the_seed_recipe_cuts_the_backbone_as_the_seed_and_the_default_takes_the_caches():
    seed = recipe_config("seed", task="au", **PLACES)
    assert (seed.trainable_blocks, seed.input_size) == (
        5,
        112,
    )  # their code: every block but the stem, 112 px
    plain = recipe_config("default", task="au", **PLACES)
    assert (plain.trainable_blocks, plain.input_size) == (None, None)  # the cache's
    assert (
        recipe_config("seed", task="au", **PLACES, trainable_blocks=2, input_size=224).trainable_blocks == 2
    )
    # what `run` and the learnability extract for a recipe: flags given, else the recipe's, else 2 at 224
    assert recipe_cut("seed") == (5, 112) and recipe_cut("default") == (2, 224)
    assert recipe_cut("seed", 3, None) == (3, 112) and recipe_cut("default", None, 112) == (2, 112)


def test_train_with_the_seed_recipe_on_a_cache_of_another_cut_names_both_and_the_extraction(tmp_path):
    from jobs.train.trainer import check_cut

    cfg = recipe_config("seed", task="va", input=tmp_path, cache="C", output=tmp_path)
    with pytest.raises(train_job.TrainError) as refused:
        check_cut(cfg, {"trainable_blocks": 2, "input_size": 224})
    message = str(refused.value)
    assert "made with --trainable-blocks 2, --input-size 224" in message
    assert "asks for --trainable-blocks 5, --input-size 112 (--recipe seed sets them unless given)" in message
    assert "`lwaffect extract --trainable-blocks 5 --input-size 112`" in message
    assert "or train with --trainable-blocks 2 --input-size 224" in message
    check_cut(cfg, {"trainable_blocks": 5, "input_size": 112, "cache_kind": "crops"})  # the seed's cache


@pytest.mark.parametrize(
    "options, blocks, size, kind",
    [
        ((("recipe", "seed"),), None, None, (5, 112, "crops")),
        ((), None, None, (2, 224, "maps")),
        ((("recipe", "seed"),), 3, 224, (3, 224, "maps")),  # flags given win over the recipe
    ],
)
def test_runs_extraction_and_training_follow_the_recipe(tmp_path, monkeypatch, options, blocks, size, kind):
    from types import SimpleNamespace

    import jobs.extract.driver as extract_driver

    extracted = []
    report = SimpleNamespace(cached=[], skipped=[], frames=0, stages={})
    monkeypatch.setattr(extract_driver, "extract", lambda cfg, **kw: extracted.append(cfg) or report)
    cfg = RunConfig(
        input=tmp_path, tasks=("va",), train_options=options, trainable_blocks=blocks, input_size=size
    )
    run_driver.extract_stage(cfg, ["s"], lambda _: None)
    made = extracted[0]
    assert (made.backbone.trainable_blocks, made.backbone.input_size, made.kind) == kind
    assert made.faces.crop_size == kind[1]  # the crops are aligned at the input size
    trained = checkpoints.train_config(cfg, "va")
    assert (trained.trainable_blocks, trained.input_size) == kind[:2]


def test_run_command_leaves_the_cut_to_the_recipe_unless_given(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        run_driver,
        "run",
        lambda cfg, say, ray_start=None: seen.append(cfg) or (_ for _ in ()).throw(ValueError("x")),
    )
    base = ["run", "--input", str(tmp_path), "--task", "va", "--recipe", "seed"]
    CliRunner().invoke(app, base)
    CliRunner().invoke(app, [*base, "--trainable-blocks", "4", "--input-size", "224"])
    assert [(c.trainable_blocks, c.input_size) for c in seen] == [(None, None), (4, 224)]
    assert checkpoints.backbone_cut(seen[0]) == (5, 112) and checkpoints.backbone_cut(seen[1]) == (4, 224)
