"""The model of each task of a run: a checkpoint passed with --weights, else one trained in OUT/checkpoints.

A task without --weights is trained when the input has labels for it (train and validation subjects). A
model already in OUT/checkpoints/<task>/ made with the same training settings on the same cache is reused
(a run cut short resumes its epochs); one made with other settings is an error naming the differences,
unless `--retrain`. `--final` then trains on train + validation for the epochs the validation run chose,
in OUT/checkpoints/<task>/final/, and predicts with that model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from jobs.run.config import RunConfig, RunError
from jobs.run.report import TaskModel
from jobs.train.recipes import recipe_config, recipe_cut
from jobs.train.state import config_dict
from jobs.train.trainer import BEST, LAST, LOG, RESUMABLE_CHANGES, TrainConfig, train
from model.checkpoint import read_checkpoint_meta
from model.weights import file_hash
from pipeline.cache.spec import spec_differences

FINAL_DIR = "final"  # OUT/checkpoints/<task>/final: the model trained on train + validation
# recorded in a checkpoint but no reason to train again when they differ
IGNORED = (*RESUMABLE_CHANGES, "input", "cache")


def given_weights(cfg: RunConfig, tasks: list[str]) -> dict[str, Path]:
    """Task -> checkpoint of the --weights files (each records its task); refuses a file of no asked task."""
    given: dict[str, Path] = {}
    for path in cfg.weights:
        if not Path(path).exists():
            raise RunError(f"{path}: no such checkpoint")
        task = read_checkpoint_meta(path).get("task")
        if task not in tasks:
            raise RunError(f"checkpoint {path} is a {task!r} model, not {' or '.join(map(repr, tasks))}: pass a "
                           f"checkpoint trained for {' or '.join(map(repr, tasks))}")  # fmt: skip
        if task in given:
            raise RunError(f"two checkpoints for task {task}: {given[task]} and {path}")
        given[task] = Path(path)
    return given


def weights_needed(cfg: RunConfig, task: str, why: str = "") -> str:
    """What to say when a task has neither --weights nor labels: which checkpoint is needed and how to make it."""
    ckpt_dir = cfg.checkpoint_dir(task)
    cache = cfg.cache_location
    return (
        f"lwaffect run needs a {task} checkpoint{why}: pass --weights CKPT, a file made by `lwaffect train` "
        f"for task {task} on a cache of the same backbone. To make one from labelled data:\n"
        f"  lwaffect extract --input {cfg.input} --cache {cache} --split all\n"
        f"  lwaffect train --task {task} --input {cfg.input} --cache {cache} --output {ckpt_dir}\n"
        f"then run again with --weights {ckpt_dir / BEST}"
    )


def backbone_cut(cfg: RunConfig) -> tuple[int, int]:
    """N and the input size of this run's cache and models: `--trainable-blocks` and `--input-size` where
    given, else the recipe's (`--recipe seed`: 5, 112), else 2 and 224."""
    recipe = dict(cfg.train_options).get("recipe", "default")
    return recipe_cut(recipe, cfg.trainable_blocks, cfg.input_size)


def train_config(cfg: RunConfig, task: str) -> TrainConfig:
    """The training run of `task`: the recipe's settings (`recipe` in the run's training flags, else the
    default recipe), the run's other training flags over them, the run's cache and folder."""
    options = dict(cfg.train_options)
    options.setdefault("device", cfg.device)
    recipe = options.pop("recipe", "default")
    options["trainable_blocks"], options["input_size"] = backbone_cut(cfg)  # the cache is extracted so
    return recipe_config(recipe, task=task, input=Path(cfg.input), cache=cfg.cache_location,
                         output=cfg.checkpoint_dir(task), **options)  # fmt: skip


def differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Training settings that differ between a saved model and this run (resumable ones left out)."""
    keys = sorted(saved.keys() - set(IGNORED))  # a setting newer than the saved model keeps its default
    return [
        f"{k}: {saved.get(k)!r} (saved) vs {wanted.get(k)!r} (now)"
        for k in keys
        if saved.get(k) != wanted.get(k)
    ]


def _finished(tcfg: TrainConfig) -> bool:
    """Whether the run in `tcfg.output` did all its epochs or stopped early (no last.pt: a copied model)."""
    last = tcfg.output / LAST
    if not last.exists():
        return True
    state = torch.load(last, map_location="cpu", weights_only=True)["state"]
    return bool(state["stopped"]) or int(state["epoch"]) >= tcfg.epochs


def _clear(folder: Path) -> None:
    """Remove the files of a training run (and nothing else) so that it starts over."""
    for name in (BEST, LAST, LOG):
        (folder / name).unlink(missing_ok=True)


def trained(tcfg: TrainConfig, cache_spec: dict, retrain: bool, say: Callable[[str], None]) -> TaskModel:
    """The model of training run `tcfg`: reused, resumed or trained; refuses one made with other settings."""
    best = tcfg.output / BEST
    if best.exists():
        meta = read_checkpoint_meta(best)
        diffs = differences(meta.get("train_config") or {}, config_dict(tcfg))
        diffs += [f"cache {d}" for d in spec_differences(meta.get("cache_spec") or {}, cache_spec)]
        if diffs and not retrain:
            raise RunError(
                f"{best} was trained with other settings ({'; '.join(diffs)}). Pass the same settings, "
                f"--retrain to train again, or --weights to use it as it is."
            )
        if diffs:
            say(f"--retrain: training {tcfg.task} again in {tcfg.output} ({'; '.join(diffs)})")
            _clear(tcfg.output)
        elif _finished(tcfg):
            say(f"reusing {best} (trained with the same settings; --retrain trains again)")
            return _model(tcfg.task, best, "reused")
    elif retrain:
        _clear(tcfg.output)
    say(f"training {tcfg.task} ({tcfg.config}, up to {tcfg.epochs} epochs) in {tcfg.output}")
    result = train(tcfg, say=lambda line: say(f"  {line}"))
    say(f"best {tcfg.task} {result.best_metric:.4f} at epoch {result.best_epoch}: {result.checkpoint}")
    return _model(tcfg.task, result.checkpoint, "resumed" if result.resumed_from else "trained")


def _model(task: str, path: Path, source: str) -> TaskModel:
    meta = read_checkpoint_meta(path)
    return TaskModel(task=task, path=path, source=source, train_config=meta.get("train_config"),
                     metric=meta.get("metric"), epoch=meta.get("epoch"),
                     final=bool((meta.get("train_config") or {}).get("final")),
                     sha256=file_hash(path, length=64))  # fmt: skip


def model_for(cfg: RunConfig, task: str, cache_spec: dict, say: Callable[[str], None]) -> TaskModel:
    """The checkpoint to predict `task` with: trained (or reused) in OUT/checkpoints/<task>; the input must
    have labelled train and validation subjects of the task (`jobs.run.driver.labelled`)."""
    tcfg = train_config(cfg, task)
    model = trained(tcfg, cache_spec, cfg.retrain, say)
    if not cfg.final:
        return model
    epochs = int(model.epoch or tcfg.epochs)
    final = dataclasses.replace(
        tcfg, output=tcfg.output / FINAL_DIR, epochs=epochs, patience=epochs, final=True
    )
    say(f"--final: training {task} on train + validation for {epochs} epochs (the validation run's best)")
    return trained(final, cache_spec, cfg.retrain, say)
