"""`pretrain(cfg)`: fine-tune MobileNetV4 on an AffectNet folder and write its backbone as a weights file.

The network (`model.pretrain.PretrainNet`) is the timm features_only body with an 8-class expression head
and a valence / arousal head. The body starts from random weights (seed `cfg.seed`), a weights file or
timm's hub weights; its normalisation is the file's when it records one, else timm's for the name.

Loss: the expression cross-entropy (label smoothing) weighted by class (`jobs.pretrain.data.
class_weights`: the rarer a class in training, the heavier; no sampler, every image once per epoch) over
images of classes 0..7, plus `va_weight` x the valence / arousal loss (1 - CCC or MSE, `model.losses.
VALoss`) over images with both values (not -2). AdamW, linear warm-up over the first tenth of an epoch,
cosine decay to zero at the last step.

Every epoch ends with validation on the validation part (accuracy and macro F1 over classes 0..7, CCC of
valence and arousal), a printed line and a record in STATE/log.jsonl; then the resume state
(STATE/state.pt: network, optimiser, schedule, epoch, best) is written atomically, and, when the macro F1
is the best so far, the output file: the body's state dict as .safetensors with the normalisation and the
input size in its metadata (`model.weights.weights_metadata`). A rerun with the same settings goes on from
the last finished epoch; the order of images and the augmentation of epoch e derive from (seed, e).
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from jobs.pretrain.config import RESUME_FIELDS, PretrainConfig, PretrainError
from jobs.pretrain.data import FaceImages, augment, class_weights, normalise
from jobs.progress import current_display, progress_display
from jobs.train.state import append_log, config_dict, read_log, torch_settings
from model.backbone import OUT_INDICES
from model.losses import ExprLoss, VALoss
from model.pretrain import AFFECTNET_CLASSES, PretrainNet
from model.weights import from_hub, load_weights_file, weights_metadata
from pipeline.datasets.affectnet import AffectNetSet, read_affectnet
from pipeline.io import jsonable, write_bytes
from pipeline.metrics import ccc, f1_per_class

STATE_FILE, LOG_FILE = "state.pt", "log.jsonl"


@dataclass
class PretrainResult:
    """What a run did."""

    output: Path  # the weights file (the best epoch's body)
    epochs: int  # epochs finished in all
    best_epoch: int  # the epoch written to `output`
    best: dict[str, float]  # its validation figures (accuracy, macro_f1, ccc_valence, ccc_arousal)
    seconds: float  # wall time of this call


def _body(cfg: PretrainConfig) -> tuple[Any, tuple[float, ...], tuple[float, ...], str]:
    """The timm features_only body with its starting weights, its normalisation and where that came from."""
    import timm

    def create(pretrained: bool) -> Any:
        return timm.create_model(cfg.name, pretrained=pretrained, features_only=True, out_indices=OUT_INDICES)

    if cfg.backbone_weights is not None:
        body = create(False)
        info = load_weights_file(body, cfg.backbone_weights)
        if info.mean is not None and info.std is not None:
            return body, info.mean, info.std, "file"
    else:
        body = from_hub(cfg.name, lambda: create(True)) if cfg.pretrained else create(False)
    pcfg = body.pretrained_cfg
    return body, tuple(float(v) for v in pcfg["mean"]), tuple(float(v) for v in pcfg["std"]), "timm"


def _loader(data: FaceImages, cfg: PretrainConfig, shuffle_seed: int | None) -> DataLoader:
    generator = None
    if shuffle_seed is not None:
        generator = torch.Generator().manual_seed(shuffle_seed)
    return DataLoader(data, batch_size=cfg.batch_size, shuffle=generator is not None, generator=generator,
                      num_workers=cfg.workers, drop_last=False)  # fmt: skip


def _checked_state(cfg: PretrainConfig, path: Path) -> dict | None:
    """The resume state in `path`, when there is one made with the same settings."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PretrainError(f"cannot read the resume state {path}: {type(e).__name__}: {e}") from e
    mine, theirs = config_dict(cfg), state.get("config", {})
    diffs = [
        f"{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in RESUME_FIELDS if theirs.get(k) != mine.get(k)
    ]
    if diffs:
        raise PretrainError(f"the resume state {path} was made with other settings ({'; '.join(diffs)}); "
                            f"remove {path.parent} or pass another --state folder")  # fmt: skip
    return state


class Pretrainer:
    """Network, optimiser, schedule and bookkeeping of one pretraining run."""

    def __init__(self, cfg: PretrainConfig, data: AffectNetSet, say: Callable[[str], None]):
        self.cfg, self.say = cfg, say
        self.device = torch.device(cfg.device)
        body, self.mean, self.std, self.norm_source = _body(cfg)
        self.net = PretrainNet(body, cfg.dropout).to(self.device)
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)
        self.train_data = FaceImages(data.train, cfg.input_size)
        self.val_data = FaceImages([i for i in data.validation if i.expression < AFFECTNET_CLASSES
                                    or i.valence > -2], cfg.input_size)  # fmt: skip
        weights = class_weights([i.expression for i in data.train])
        self.class_weights = weights
        self.expr_loss = ExprLoss(gamma=0.0, label_smoothing=cfg.label_smoothing, class_weights=weights)
        self.va_loss = VALoss() if cfg.va_loss == "ccc" else None
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_data) / cfg.batch_size)
        total, warm = cfg.epochs * self.steps_per_epoch, max(1, self.steps_per_epoch // 10)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(step - warm, total - warm) / max(total - warm, 1)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.epoch, self.best, self.best_epoch = 0, -math.inf, 0
        self.best_figures: dict[str, float] = {}

    # --- state ---------------------------------------------------------------------------------------

    def resume(self, path: Path) -> None:
        state = _checked_state(self.cfg, path)
        if state is None:
            return
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best, self.best_epoch = state["epoch"], state["best"], state["best_epoch"]
        self.best_figures = dict(state.get("best_figures", {}))
        self.say(
            f"resuming after epoch {self.epoch} (best macro F1 {self.best:.4f} at epoch {self.best_epoch})"
        )

    def save_state(self, path: Path) -> None:
        state = {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "best": self.best,
                 "best_epoch": self.best_epoch, "best_figures": self.best_figures,
                 "config": config_dict(self.cfg)}  # fmt: skip
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes(path, buffer.getvalue())

    def write_output(self, figures: dict[str, float]) -> None:
        from safetensors.torch import save

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.body.state_dict().items()}
        meta = weights_metadata(self.mean, self.std, self.cfg.input_size)
        meta |= {"lwaffect": "pretrain", "backbone": self.cfg.name, "epoch": str(self.epoch),
                 "normalization_source": self.norm_source,
                 "validation": json.dumps(jsonable(figures))}  # fmt: skip
        write_bytes(self.cfg.output, save(tensors, metadata=meta))

    # --- epochs --------------------------------------------------------------------------------------

    def train_epoch(self) -> float:
        cfg, epoch = self.cfg, self.epoch + 1
        torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout of this epoch
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # augmentation of this epoch
        self.net.train()
        bar = current_display(self.say).bar(f"epoch {epoch}", self.steps_per_epoch, "steps", every_s=30)
        losses = []
        for images, expression, va, va_valid in _loader(self.train_data, cfg, cfg.seed * 1000 + epoch):
            images = augment(images.to(self.device), generator, cfg.flip, cfg.jitter, cfg.color_jitter)
            x = normalise(images, self.mean, self.std)
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            logits, va_out = self.net(x)  # (B, 8), (B, 2)
            expression, va, va_valid = (
                expression.to(self.device),
                va.to(self.device),
                va_valid.to(self.device),
            )
            loss = self.expr_loss(logits, expression.float())
            if self.va_loss is not None:
                loss = loss + cfg.va_weight * self.va_loss(va_out, va, va_valid)
            elif va_valid.any():
                loss = loss + cfg.va_weight * ((torch.tanh(va_out) - va) ** 2)[va_valid].mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            losses.append(float(loss.detach()))
            bar.advance(1, note=f"loss {np.mean(losses[-20:]):.4f}")
        bar.close()
        return float(np.mean(losses))

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        self.net.eval()
        preds, labels, va_pred, va_true, valid = [], [], [], [], []
        for images, expression, va, va_valid in _loader(self.val_data, self.cfg, None):
            x = normalise(images.to(self.device), self.mean, self.std)
            logits, va_out = self.net(x)
            preds.append(logits.argmax(1).cpu().numpy())
            labels.append(expression.numpy())
            va_pred.append(torch.tanh(va_out).cpu().numpy())
            va_true.append(va.numpy())
            valid.append(va_valid.numpy())
        pred, true = np.concatenate(preds), np.concatenate(labels)
        keep = true < AFFECTNET_CLASSES
        f1 = f1_per_class(pred[keep], true[keep], AFFECTNET_CLASSES)
        present = np.bincount(true[keep], minlength=AFFECTNET_CLASSES) > 0
        vp, vt, ok = np.concatenate(va_pred), np.concatenate(va_true), np.concatenate(valid).astype(bool)
        return {
            "accuracy": float((pred[keep] == true[keep]).mean()) if keep.any() else float("nan"),
            "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
            "ccc_valence": ccc(vp[ok, 0], vt[ok, 0]) if ok.sum() > 1 else float("nan"),
            "ccc_arousal": ccc(vp[ok, 1], vt[ok, 1]) if ok.sum() > 1 else float("nan"),
        }


def pretrain(cfg: PretrainConfig, say: Callable[[str], None] | None = None) -> PretrainResult:
    """Run (or go on with) the pretraining `cfg` describes; returns where the weights went and the figures."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.perf_counter()
    cfg.check()
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PretrainError("--device cuda asked for, but torch sees no CUDA device")
    data = read_affectnet(cfg.input)
    state_dir = cfg.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    with torch_settings(cfg.seed, cfg.threads), progress_display(say):
        trainer = Pretrainer(cfg, data, say)
        say(f"pretraining {cfg.name} at {cfg.input_size} px on {cfg.input} ({data.layout} layout): "
            f"{len(trainer.train_data)} training, {len(trainer.val_data)} validation images; class weights "
            + " ".join(f"{w:.2f}" for w in trainer.class_weights))  # fmt: skip
        trainer.resume(state_dir / STATE_FILE)
        if trainer.epoch == 0:
            append_log(state_dir / LOG_FILE, {"event": "start", "config": config_dict(cfg),
                                              "normalization_source": trainer.norm_source})  # fmt: skip
        overall = current_display(say).bar("pretrain", cfg.epochs, "epochs", keep=True)
        overall.advance(trainer.epoch)
        while trainer.epoch < cfg.epochs:
            tick = time.perf_counter()
            loss = trainer.train_epoch()
            figures = trainer.validate()
            trainer.epoch += 1
            if figures["macro_f1"] > trainer.best or trainer.best_epoch == 0:
                trainer.best, trainer.best_epoch, trainer.best_figures = (
                    figures["macro_f1"],
                    trainer.epoch,
                    figures,
                )
                trainer.write_output(figures)
            trainer.save_state(state_dir / STATE_FILE)
            seconds = time.perf_counter() - tick
            record = {"epoch": trainer.epoch, "loss": loss, **figures, "seconds": round(seconds, 2),
                      "best_epoch": trainer.best_epoch}  # fmt: skip
            append_log(state_dir / LOG_FILE, jsonable(record))
            say(f"epoch {trainer.epoch}/{cfg.epochs}: loss {loss:.4f}, validation accuracy {figures['accuracy']:.4f}, "
                f"macro F1 {figures['macro_f1']:.4f}, CCC valence {figures['ccc_valence']:.4f} arousal "
                f"{figures['ccc_arousal']:.4f} ({seconds:.1f} s)")  # fmt: skip
            overall.advance(1)
        overall.close()
    if not cfg.output.is_file():  # finished before and the output removed since: the last epoch's network
        say(f"{cfg.output} is missing: writing the network of the last epoch ({trainer.epoch})")
        trainer.best_epoch = trainer.epoch
        trainer.write_output(trainer.best_figures)
    say(f"wrote {cfg.output} (epoch {trainer.best_epoch}, macro F1 {trainer.best:.4f}); "
        f"log {state_dir / LOG_FILE}")  # fmt: skip
    return PretrainResult(cfg.output, trainer.epoch, trainer.best_epoch, dict(trainer.best_figures),
                          time.perf_counter() - started)  # fmt: skip


def read_pretrain_log(cfg: PretrainConfig) -> list[dict]:
    """The records of a run's log.jsonl (start records and one per epoch)."""
    path = cfg.state_dir / LOG_FILE
    return read_log(path) if path.is_file() else []
