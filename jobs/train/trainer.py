"""`lwaffect train`: train the backbone tail + TAM + head of one task on cached maps.

From a crop cache (`lwaffect extract --cache-kind crops`, the default from 4 trainable blocks) the frozen part runs on the fly on the training
device, on augmented crops (`--augment`; `pipeline.temporal.crops`).

Reads the catalogue (labels, splits) and the feature cache, trains with AdamW, warm-up + cosine schedule,
gradient clipping and optional EMA, validates each epoch with the official metric over all valid frames
of the validation subjects pooled, keeps the best checkpoint (with AU / AH thresholds tuned on all
validation frames; the epoch is chosen by the two-fold figure of `pipeline.temporal.validate`, and both
figures are logged and kept) and stops early after `patience` epochs without improvement. Every epoch is appended to `log.jsonl` and
its state to `last.pt`, so a run started again with the same settings goes on after its last epoch.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch

from jobs.progress import current_display, progress_display
from jobs.train.checks import (
    backbone_for,
    check_backbone,
    check_cache,
    check_cut,
    crop_maps,
    labelled_subjects,
)
from jobs.train.config import TrainConfig, TrainError, TrainResult
from jobs.train.state import (
    RunState,
    append_log,
    config_dict,
    read_log,
    rng_state,
    save_checkpoint,
    set_rng_state,
    torch_settings,
)
from model.affect import AffectModel
from model.configs import build_model
from model.losses import loss_for
from model.tasks import get_task
from pipeline.cache.read import open_cache
from pipeline.datasets import load_catalogue
from pipeline.io import atomic_path
from pipeline.temporal.crops import SampledMaps
from pipeline.temporal.optim import EMA, make_scheduler, param_groups, train_step
from pipeline.temporal.predictor import Predictor, default_stride
from pipeline.temporal.stats import map_statistics
from pipeline.temporal.validate import validate
from pipeline.temporal.windows import WindowConfig, WindowDataset, window_loader

BEST = "best.safetensors"  # best checkpoint in the output folder
LAST = "last.pt"  # state of the last completed epoch
LOG = "log.jsonl"  # one JSON line per epoch and per start / resume
# settings that may change between a run and its resumption
RESUMABLE_CHANGES = (
    "epochs", "patience", "device", "log_every", "num_workers", "threads", "allow_missing", "output", "strict",
)  # fmt: skip


@dataclass
class _Data:
    """What a run trains and validates on."""

    cache: Any  # the FeatureCache
    spec: dict  # its spec
    labels: dict[str, Any]  # subject -> Labels of the task
    train: list[str]  # train subjects with shards
    val: list[str]  # validation subjects with shards


def prepare(cfg: TrainConfig, say: Callable[[str], None]) -> _Data:
    """Labelled train and validation subjects of the task that have cache shards, and their labels."""
    catalogue = load_catalogue(cfg.input, strict=cfg.strict)
    problems = [p for p in catalogue.errors if p.task in (None, cfg.task)]
    for problem in problems:
        say(f"left out: {problem}")
    if problems:
        say(f"{len(problems)} problems in {cfg.input}: training on the rest (--strict stops instead)")
    cache = open_cache(cfg.cache)
    train = labelled_subjects(catalogue, cfg.task, "train", cfg.train_subjects)
    val = labelled_subjects(catalogue, cfg.task, "validation", cfg.val_subjects)
    if not train or not val:
        raise TrainError(f"{cfg.input} has no labelled train and validation subjects for {cfg.task}")
    train, val = check_cache(cfg, set(cache.subjects()), train, val, say)
    labels = {s: catalogue.labels[(cfg.task, s)] for s in train + val}
    if cfg.final:  # a final model learns from the validation subjects too; they are still scored
        train = train + [s for s in val if s not in train]
    return _Data(cache, dict(cache.spec), labels, train, val)


def _fingerprint(cfg: TrainConfig, data: _Data) -> dict:
    """The settings a resumed run must share with the one it goes on from."""
    d = {k: v for k, v in config_dict(cfg).items() if k not in RESUMABLE_CHANGES}
    d["cache_weights_hash"] = data.spec.get("weights_hash")
    d["train_subjects"], d["val_subjects"] = sorted(data.train), sorted(data.val)
    return d


def train(cfg: TrainConfig, say: Callable[[str], None] | None = None) -> TrainResult:
    """Train `cfg.task` on the cache; resumes from `cfg.output/last.pt` when the settings match."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.perf_counter()
    get_task(cfg.task)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for, but torch sees no CUDA device")
    data = prepare(cfg, say)
    with torch_settings(cfg.seed, cfg.threads), progress_display(say):
        trainer = Trainer(cfg, data, device, say)
        trainer.resume()
        return trainer.run(started)


class Trainer:
    """The model, optimiser, schedule and bookkeeping of one run."""

    def __init__(self, cfg: TrainConfig, data: _Data, device: torch.device, say: Callable[[str], None]):
        self.cfg, self.data, self.device, self.say = cfg, data, device, say
        check_cut(cfg, data.spec)
        backbone = backbone_for(cfg, data.spec)
        model = build_model(cfg.config, cfg.task, backbone, num_frames=cfg.seq_len)
        check_backbone(model, data.spec)
        self.crops = crop_maps(cfg, data.spec, backbone, device)  # None unless training from crops
        stats_from = data.cache if self.crops is None else SampledMaps(data.cache, self.crops)
        model.standardise.fit(map_statistics(stats_from, data.train))
        model.backbone_bn = cfg.backbone_bn  # applied whenever the model is put in train mode
        self.model = model.to(device)
        self.loss_fn = loss_for(cfg.task, **dict(cfg.loss_options))
        kind = get_task(cfg.task).kind
        balanced = (
            cfg.balanced if cfg.balanced is not None else kind in ("multilabel", "multiclass", "binary")
        )
        wcfg = WindowConfig(
            cfg.seq_len, cfg.stride, cfg.include_no_face, cfg.no_face, balanced, seed=cfg.seed
        )
        self.dataset = WindowDataset(data.cache, {s: data.labels[s] for s in data.train}, cfg.task, wcfg)
        if len(self.dataset) == 0:
            raise TrainError(f"no training window has a valid {cfg.task} label")
        self.loader = window_loader(self.dataset, cfg.batch_size, cfg.num_workers)
        self.steps_per_epoch = math.ceil(len(self.dataset) / cfg.batch_size)
        total = self.steps_per_epoch * cfg.epochs
        self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        self.scheduler = make_scheduler(self.optimizer, total, int(cfg.warmup * total), cfg.min_lr_ratio,
                                        cfg.schedule, cfg.restart_steps)  # fmt: skip
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        eval_stride = cfg.eval_stride or default_stride(cfg.seq_len)
        self.predictor = Predictor(self.model, cfg.task, cfg.seq_len, eval_stride, batch_size=cfg.batch_size,
                                   device=device, bf16=cfg.bf16, no_face=cfg.no_face,
                                   include_no_face=cfg.include_no_face, crops=self.crops)  # fmt: skip
        cfg.output.mkdir(parents=True, exist_ok=True)
        self.last, self.log, self.best = cfg.output / LAST, cfg.output / LOG, cfg.output / BEST
        self.fingerprint = _fingerprint(cfg, data)
        self.state = RunState()
        self.resumed_from = 0

    def resume(self) -> None:
        """Go on from last.pt when it was made with the same settings; else say why the run starts over."""
        if self.last.exists():
            saved = torch.load(self.last, map_location=self.device, weights_only=True)
            old = saved["fingerprint"]
            # a setting newer than the saved state counts as its default there
            defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
            changed = sorted(
                k
                for k in old.keys() | self.fingerprint.keys()
                if old.get(k, defaults.get(k)) != self.fingerprint.get(k)
            )
            if changed:
                diffs = "; ".join(f"{k}: {old.get(k)!r} -> {self.fingerprint.get(k)!r}" for k in changed)
                self.say(f"starting over: {self.last} was made with other settings ({diffs})")
                append_log(self.log, {"event": "start_over", "reason": diffs})
            else:
                self.model.load_state_dict(saved["model"])
                self.optimizer.load_state_dict(saved["optimizer"])
                self.scheduler.load_state_dict(saved["scheduler"])
                if self.ema is not None and saved.get("ema") is not None:
                    self.ema.load_state_dict(saved["ema"])
                set_rng_state(saved["rng"])
                self.state = RunState(**saved["state"])
                self.resumed_from = self.state.epoch
                self.say(f"resuming after epoch {self.state.epoch} (best {self.state.best:.4f} at epoch "
                         f"{self.state.best_epoch})")  # fmt: skip
                append_log(self.log, {"event": "resume", "after_epoch": self.state.epoch})
        if self.state.epoch == 0:
            append_log(self.log, {"event": "start", "config": config_dict(self.cfg), "train_subjects":
                                   len(self.data.train), "val_subjects": len(self.data.val),
                                   "train_windows": len(self.dataset)})  # fmt: skip

    def train_epoch(self, epoch: int) -> list[float]:
        """One pass over this epoch's windows; the loss of every step.

        Its progress (steps, loss, learning rate) is a bar on the open display (`jobs.progress`); without a
        terminal, a line every `log_every` steps.
        """
        cfg, losses = self.cfg, []
        bar = current_display(self.say).bar(f"epoch {epoch}", self.steps_per_epoch, "steps",
                                            every=cfg.log_every or None)  # fmt: skip
        self.dataset.set_epoch(epoch)
        for batch in self.loader:
            if self.crops is not None:  # (crops,) -> the cached maps, augmented
                batch = self.crops.batch(batch, train=True)
            loss = train_step(self.model, batch, self.loss_fn, self.optimizer, self.scheduler, cfg.grad_clip,
                              cfg.bf16, self.device)  # fmt: skip
            if loss is not None:
                losses.append(loss)
            if self.ema is not None:
                self.ema.update(self.model)
            recent = np.mean(losses[-(cfg.log_every or 50) :]) if losses else float("nan")
            bar.advance(1, note=f"loss {recent:.4f} lr {self.scheduler.get_last_lr()[0]:.2e}")
        bar.close()
        return losses

    def validate(self, epoch: int) -> tuple[Any, bool]:
        """The official metric on the validation subjects; saves the best checkpoint when it improved."""
        averaged = self.ema.applied(self.model) if self.ema is not None else nullcontext(self.model)
        with averaged as model:
            predictor = replace(self.predictor, model=model)  # the averaged weights where EMA is on
            val = validate(predictor, self.data.cache, self.data.labels, self.data.val, self.cfg.average)
            # a final model keeps its last epoch: its validation subjects were trained on
            improved = self.cfg.final or val.result.value > self.state.best
            if improved:
                save_checkpoint(self.best, cast(AffectModel, model), self.meta(epoch, val))
        return val, improved

    def meta(self, epoch: int, val: Any) -> dict:
        """What the checkpoint records besides the model: what `lwaffect predict` needs, and provenance."""
        predictor = replace(self.predictor, thresholds=val.thresholds)  # task, seq_len, stride, thresholds
        tuned = val.tuned.to_dict() if val.tuned is not None else None
        return {**predictor.checkpoint_meta(), "metric": val.result.to_dict(), "metric_tuned": tuned,
                "epoch": epoch, "cache_spec": self.data.spec, "train_config": config_dict(self.cfg)}  # fmt: skip

    def save_last(self) -> None:
        """The state after the last completed epoch, written atomically."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                 "rng": rng_state(), "state": dataclasses.asdict(self.state),
                 "fingerprint": self.fingerprint}  # fmt: skip
        with atomic_path(self.last) as tmp:
            torch.save(state, tmp)

    def run(self, started: float) -> TrainResult:
        cfg, state = self.cfg, self.state
        self.say(f"{cfg.task}: {len(self.data.train)} train subjects ({len(self.dataset)} windows, "
                 f"{self.steps_per_epoch} steps an epoch), {len(self.data.val)} validation subjects, model "
                 f"{cfg.config} on {self.device}")  # fmt: skip
        overall = current_display(self.say).bar(f"train {cfg.task}", cfg.epochs, "epochs", keep=True)
        overall.advance(state.epoch)
        while state.epoch < cfg.epochs and not state.stopped:
            epoch, t0 = state.epoch + 1, time.perf_counter()
            losses = self.train_epoch(epoch)
            train_s = time.perf_counter() - t0
            val, improved = self.validate(epoch)
            if improved:
                state.best, state.best_epoch, state.since_best = val.result.value, epoch, 0
            else:
                state.since_best += 1
            state.epoch, state.stopped = epoch, state.since_best >= cfg.patience
            loss = float(np.mean(losses)) if losses else float("nan")
            record = {"epoch": epoch, "train_loss": loss if losses else None, "metric": val.result.value,
                      "metric_name": val.result.metric, "parts": val.result.parts, "frames": val.frames,
                      "thresholds": val.thresholds, "tuned": val.tuned.value if val.tuned else None,
                      "tuned_parts": val.tuned.parts if val.tuned else None,
                      "lr": self.scheduler.get_last_lr()[0], "best": state.best,
                      "improved": improved, "train_s": round(train_s, 2),
                      "epoch_s": round(time.perf_counter() - t0, 2),
                      "resumed": self.resumed_from > 0 and epoch == self.resumed_from + 1}  # fmt: skip
            append_log(self.log, record)
            self.save_last()
            tuned = f" (tuned on all {val.tuned.value:.4f})" if val.tuned else ""
            self.say(f"epoch {epoch}/{cfg.epochs} loss {loss:.4f} {cfg.task} {val.result.value:.4f}{tuned} (best "
                     f"{state.best:.4f} @ {state.best_epoch}){' *' if improved else ''} "
                     f"{record['epoch_s']:.1f}s")  # fmt: skip
            overall.advance(1, note=f"best {state.best:.4f} @ {state.best_epoch}")
            if state.stopped:
                self.say(f"stopping early: no improvement for {cfg.patience} epochs")
        overall.close()
        return TrainResult(best_metric=state.best, checkpoint=self.best, epochs_run=state.epoch,
                           wall_time_s=time.perf_counter() - started, best_epoch=state.best_epoch,
                           resumed_from=self.resumed_from, stopped_early=state.stopped,
                           history=tuple(r for r in read_log(self.log) if "epoch" in r))  # fmt: skip
