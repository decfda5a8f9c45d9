"""The settings of a training run (`TrainConfig`), what it achieved (`TrainResult`) and its error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.affect import BackboneBN
from pipeline.metrics import Average
from pipeline.temporal.augment import Augment
from pipeline.temporal.optim import Schedule
from pipeline.temporal.windows import NoFace


class TrainError(RuntimeError):
    """A configuration or data problem that stops training before it starts; the message says what to do."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    task: str  # va, au, expr, ah or emi
    input: Path  # data set folder (labels and splits)
    cache: str  # feature cache made by `lwaffect extract`
    output: Path  # folder for best.safetensors, last.pt, log.jsonl
    recipe: str = "default"  # the recipe the settings came from (jobs.train.recipes); a record only
    config: str = "tam_s1"  # model config (model.configs.MODEL_CONFIGS)
    epochs: int = 20  # maximum number of epochs
    seq_len: int = 32  # frames per window (T)
    stride: int = 16  # frames between training windows
    eval_stride: int | None = None  # frames between validation windows; None: seq_len // 2
    batch_size: int = 16  # windows per step
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.05  # AdamW weight decay of weights (norms and biases never decay)
    warmup: float = 0.05  # share of all steps spent warming up
    min_lr_ratio: float = 0.01  # lowest learning rate / peak
    schedule: Schedule = "cosine"  # one cosine decay over the run, or "restarts" every restart_steps
    restart_steps: int = 2000  # steps of one cosine period of the "restarts" schedule
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    ema: float = 0.0  # EMA decay of the weights (validated and saved); 0 disables it
    bf16: bool = False  # bf16 autocast around the model
    device: str = "cpu"  # cpu, cuda, cuda:N
    seed: int = 0  # seeds weights, dropout and window order
    patience: int = 5  # epochs without improvement before stopping
    balanced: bool | None = None  # balanced window draws; None: on for au, expr, ah
    include_no_face: bool = False  # also train on frames without a detected face
    no_face: NoFace = "hold"  # maps of faceless frames: the nearest face frame's in the window, or zeros
    augment: Augment | None = None  # image augmentation from a crop cache: none | standard; None: standard
    average: Average = "macro"  # AH F1 averaging (macro over both classes, or binary); thresholds follow it
    loss_options: tuple[tuple[str, Any], ...] = ()  # keyword options of model.losses.loss_for
    backbone_weights: str | None = None  # weights file the cache was made with; None: as the cache records
    trainable_blocks: int | None = None  # backbone blocks trained (N, 0-5); None: the cache's (it must agree)
    input_size: int | None = None  # face crop side the cache was made at; None: the cache's (it must agree)
    # the trainable blocks' BatchNorm statistics in train mode: "train" (batch statistics, running ones
    # updated: the seed's code, and a step sees batch_size x seq_len frames) or "frozen" (the weights')
    backbone_bn: BackboneBN = "train"
    allow_missing: bool = False  # train on the shards that exist instead of stopping when some are missing
    train_subjects: tuple[str, ...] | None = None  # subset of the train split; None: all of it
    val_subjects: tuple[str, ...] | None = None  # subset of the validation split; None: all of it
    log_every: int = 50  # steps between progress lines
    num_workers: int = 0  # DataLoader worker processes
    threads: int | None = None  # torch CPU threads; None: torch's default (one per core)
    strict: bool = False  # stop on any bad input of the data set; False: a note per problem, the rest trains
    final: bool = False  # also train on the validation subjects and keep the last epoch (a final model)


@dataclass(frozen=True)
class TrainResult:
    """What a run achieved."""

    best_metric: float  # best validation value of the official metric
    checkpoint: Path  # the best checkpoint
    epochs_run: int  # epochs completed, counting those before a resume
    wall_time_s: float  # time of this call
    best_epoch: int = 0  # epoch of the best checkpoint
    resumed_from: int = 0  # epochs already done when this call started
    stopped_early: bool = False  # stopped by patience
    history: tuple[dict, ...] = field(default_factory=tuple)  # the epoch records of log.jsonl
