"""`lwaffect run`, `extract`, `train`, `predict`: the commands that make caches, models and predictions."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.app import _fails_with_1, _say, app, end_at_once
from jobs.cli.options import (
    Address,
    Augment,
    BackboneBN,
    BackboneWeights,
    BatchSize,
    Bf16,
    Cache,
    CachedBlocks,
    CachedInputSize,
    CacheKind,
    Device,
    DeviceName,
    Ema,
    Epochs,
    Faces,
    Fill,
    Input,
    InputSize,
    LearningRate,
    ModelConfig,
    Patience,
    Recipe,
    RecipeBlocks,
    RecipeInputSize,
    Seed,
    SeqLen,
    Split,
    SplitName,
    Subject,
    Task,
    Threads,
    TrainableBlocks,
    TrainStride,
    WorkerLogs,
)


def _work_left(input: Path, cache: str, split: str, names: tuple[str, ...] | None = None,
               rebuild: bool = False) -> bool:  # fmt: skip
    """`jobs.extract.select.work_left`, imported in Ray's start-up thread (pyarrow, the catalogue readers):
    the command's own imports go on meanwhile."""
    from jobs.extract.select import work_left

    return work_left(input, cache, split, names, rebuild)


@app.command()
def run(
    input: Input,
    task: Annotated[
        str,
        typer.Option(
            "--task",
            "-t",
            help="Task: va, au, expr, ah or emi; several as va,au,expr; or all (every "
            "task the input has labels for).",
        ),
    ],  # fmt: skip
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            help="Checkpoint made by `lwaffect train` (repeatable, one per task; each records its "
            "task). Without it a task's model is trained on the input's labels."
        ),
    ] = None,  # fmt: skip
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("out"),
    split: Split = "test",
    cache: Annotated[Path | None, typer.Option(help="Feature cache (default: OUTPUT/cache).")] = None,
    address: Address = None,
    worker_logs: WorkerLogs = False,
    stride: Annotated[
        int | None, typer.Option(min=1, help="Frames between prediction windows (default: the checkpoint's).")
    ] = None,
    fill: Fill = "linear",
    device: Device = "cpu",
    retrain: Annotated[
        bool, typer.Option(help="Train again where OUT/checkpoints holds another model.")
    ] = False,
    final: Annotated[
        bool, typer.Option(help="Then train on train + validation for the chosen epochs and predict with it.")
    ] = False,
    recipe: Recipe = "default",
    config: ModelConfig = None,
    epochs: Epochs = 20,
    seq_len: SeqLen = None,
    train_stride: TrainStride = None,
    lr: LearningRate = None,
    batch_size: BatchSize = None,
    seed: Seed = 0,
    patience: Patience = 5,
    ema: Ema = 0.0,
    bf16: Bf16 = None,
    threads: Threads = None,
    backbone_weights: BackboneWeights = None,
    trainable_blocks: RecipeBlocks = None,
    input_size: RecipeInputSize = None,
    backbone_bn: BackboneBN = "train",
    cache_kind: CacheKind = None,
    augment: Augment = None,
) -> None:
    """Extract (reusing the cache), train where no --weights are given, predict, fill, write and check.

    Writes OUT/predictions/T.parquet, OUT/submission/T/ and OUT/run.json for each task. A model trained here
    lives in OUT/checkpoints/T and is reused by a rerun with the same settings. Exit status 0 when every
    video succeeded and every submission checks, 2 when some failed (listed in OUT/failures.parquet), 1
    for a usage or configuration error.
    """
    from jobs.extract.runtime import RayStart, RuntimeConfig  # no torch: Ray starts while the rest loads
    from jobs.run.config import RunConfig

    training = dict(recipe=recipe, config=config, epochs=epochs, seq_len=seq_len, stride=train_stride, lr=lr,
                    batch_size=batch_size, seed=seed, patience=patience, ema=ema, bf16=bf16, threads=threads,
                    backbone_weights=None if backbone_weights is None else str(backbone_weights),
                    backbone_bn=backbone_bn, augment=augment)  # fmt: skip
    training = {k: v for k, v in training.items() if v is not None}  # flags not given: the recipe's
    cfg = RunConfig(input=input, tasks=tuple(t.strip() for t in task.split(",") if t.strip()),
                    weights=tuple(weights or ()), output=output, split=split,
                    cache=None if cache is None else str(cache), address=address, worker_logs=worker_logs,
                    stride=stride, fill=fill,
                    device=device, train_options=tuple(training.items()), retrain=retrain, final=final,
                    trainable_blocks=trainable_blocks, input_size=input_size, cache_kind=cache_kind)  # fmt: skip
    # Ray starts at once where a subject lacks its shard (those of the split, and of every split where a
    # model may be trained); the run stops it once the cache is complete
    when = partial(_work_left, input, cfg.cache_location, split if weights else "all")
    with RayStart(RuntimeConfig(address=address, worker_logs=worker_logs), when) as ray_start:
        from jobs.run.driver import run as run_all

        with _fails_with_1("run", ValueError, OSError):
            report = run_all(cfg, say=_say, ray_start=ray_start)
    typer.echo(report.summary())
    raise typer.Exit(report.exit_code)


@app.command()
def extract(
    input: Input,
    cache: Annotated[str, typer.Option(help="Cache location: a folder or a pyarrow filesystem URI.")],
    split: Split = "all",
    subject: Subject = "auto",
    faces: Faces = "detect",
    address: Address = None,
    worker_logs: WorkerLogs = False,
    rebuild: Annotated[bool, typer.Option(help="Replace a cache made with other settings.")] = False,
    backbone_weights: Annotated[
        Path | None, typer.Option(help="Local backbone weights file (.pth, .pth.tar, .safetensors).")
    ] = None,
    pretrained: Annotated[
        bool, typer.Option(help="Load the backbone's hub weights (needs the network).")
    ] = False,
    device: Annotated[
        DeviceName | None, typer.Option(help="cpu or cuda (default: cuda when Ray has a GPU).")
    ] = None,
    face_device: Annotated[
        DeviceName,
        typer.Option(help="Where the face detector runs; cuda: on the backbone's GPU (README, Performance)."),
    ] = "cpu",
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only this subject (repeatable; default: the whole split)."),
    ] = None,
    trainable_blocks: TrainableBlocks = 2,
    input_size: InputSize = 224,
    cache_kind: CacheKind = None,
) -> None:
    """Precompute the feature cache (one Parquet shard per subject); resumable.

    Exit status 0 when every video was cached, 2 when some failed (listed in CACHE/failures.parquet),
    1 for a usage or configuration error (e.g. a cache made with other settings, without --rebuild).
    The backbone's shapes and hash are remembered per machine (~/.cache/lwaffect, or $XDG_CACHE_HOME/lwaffect,
    or $LWAFFECT_MEMO_DIR), so that later runs start without building it; removing that folder is safe.
    """
    from jobs.extract.runtime import RayStart, RuntimeConfig  # no torch: Ray starts while the rest loads

    names = tuple(only) if only else None
    # a rerun with nothing to do starts no Ray
    when = partial(_work_left, input, cache, split, names, rebuild)
    runtime = RuntimeConfig(address=address, worker_logs=worker_logs)
    with RayStart(runtime, when) as ray_start:
        from jobs.extract.config import ExtractConfig, sized
        from jobs.extract.driver import extract as run_extract

        weights = None if backbone_weights is None else str(backbone_weights)
        if weights is None and not pretrained:
            typer.echo(
                "note: randomly initialised backbone (pass --backbone-weights FILE or --pretrained)", err=True
            )
        face_settings, backbone = sized(faces, pretrained=pretrained, weights=weights,
                                        trainable_blocks=trainable_blocks, input_size=input_size)  # fmt: skip
        if trainable_blocks >= 4 and cache_kind == "maps":  # asked for: the default from N = 4 is crops
            typer.echo(f"note: with --trainable-blocks {trainable_blocks} the cached maps outweigh the face crop "
                       "itself (`lwaffect info` lists the bytes per frame; --cache-kind crops stores the crops)",
                       err=True)  # fmt: skip
        cfg = ExtractConfig(input=input, cache=cache, split=split, subject=subject, faces=face_settings,
                            backbone=backbone, device=device, address=address, rebuild=rebuild,
                            subjects=names, cache_kind=cache_kind,
                            runtime=replace(runtime, face_device=face_device))  # fmt: skip
        with _fails_with_1("extract", ValueError, OSError, RuntimeError):
            report = run_extract(cfg, say=_say, ray_start=ray_start)
    for failure in report.failures:
        typer.echo(f"failed: {failure.subject} ({failure.stage}): {failure.reason}")
    end_at_once()  # every shard, the manifest and the failures are written, and Ray is stopped
    raise typer.Exit(report.exit_code)


@app.command()
def train(
    task: Task,
    input: Input,
    cache: Cache,
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint folder.")],
    recipe: Recipe = "default",
    config: ModelConfig = None,
    epochs: Epochs = 20,
    seq_len: SeqLen = None,
    stride: TrainStride = None,
    lr: LearningRate = None,
    batch_size: BatchSize = None,
    device: Device = "cpu",
    seed: Seed = 0,
    patience: Patience = 5,
    ema: Ema = 0.0,
    bf16: Bf16 = None,
    allow_missing: Annotated[
        bool, typer.Option(help="Train on the cached subjects only when some shards are missing.")
    ] = False,
    backbone_weights: BackboneWeights = None,
    threads: Threads = None,
    strict: Annotated[
        bool,
        typer.Option(help="Stop on any bad input of the data set (default: a note each, the rest trains)."),
    ] = False,
    trainable_blocks: CachedBlocks = None,
    input_size: CachedInputSize = None,
    backbone_bn: BackboneBN = "train",
    augment: Augment = None,
) -> None:
    """Train the temporal model on cached features; keeps the best checkpoint by the official metric.

    --recipe sets the model config, window, batch, optimiser, schedule, precision and losses (default, or
    seed: the seed paper's released settings); the flags given win over the recipe's values.
    """
    from jobs.train.recipes import recipe_config
    from jobs.train.trainer import TrainError
    from jobs.train.trainer import train as run_training

    cfg = recipe_config(recipe, task=task, input=input, cache=cache, output=output, config=config,
                        epochs=epochs, seq_len=seq_len, stride=stride, lr=lr, batch_size=batch_size,
                        device=device, seed=seed, patience=patience, ema=ema, bf16=bf16,
                        allow_missing=allow_missing, threads=threads,
                        backbone_weights=None if backbone_weights is None else str(backbone_weights),
                        strict=strict, trainable_blocks=trainable_blocks, input_size=input_size,
                        backbone_bn=backbone_bn, augment=augment)  # fmt: skip
    with _fails_with_1("train", TrainError, ValueError, OSError):
        result = run_training(cfg, say=_say)
    typer.echo(f"best {task} {result.best_metric:.4f} at epoch {result.best_epoch} of {result.epochs_run}: "
               f"{result.checkpoint} ({result.wall_time_s:.0f}s)")  # fmt: skip


@app.command()
def predict(
    task: Task,
    cache: Cache,
    weights: Annotated[Path, typer.Option(help="Checkpoint made by `lwaffect train`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")],
    stride: Annotated[
        int | None, typer.Option(min=1, help="Frames between windows (default: the checkpoint's).")
    ] = None,
    fill: Fill = "linear",
    split: Annotated[
        SplitName | None, typer.Option("--split", "-s", help="Only this split's subjects (needs --input).")
    ] = None,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="Data set folder that lists the split.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    backbone_weights: Annotated[
        Path | None,
        typer.Option(
            help="From a crop cache: the backbone weights file it was made with (if not where it was)."
        ),
    ] = None,
) -> None:
    """Per-frame predictions from a cache: OUT/predictions/T.parquet (frames without a face filled).

    From a crop cache the frozen part of the backbone runs on the crops first; it loads the weights file
    the cache records, or --backbone-weights where that file has moved.
    """
    from jobs.predict import PredictConfig
    from jobs.predict import predict as run_predict

    cfg = PredictConfig(task=task, cache=cache, weights=weights, output=output, stride=stride,
                        fill=fill, split=split, input=input, device=device,
                        backbone_weights=None if backbone_weights is None else str(backbone_weights))  # fmt: skip
    with _fails_with_1("predict", ValueError, OSError):
        report = run_predict(cfg, say=_say)
    typer.echo(f"{report.frames} {'clips' if task == 'emi' else 'frames'} of {report.subjects} subjects "
               f"({report.filled} filled, {report.frames_per_s:.0f}/s): {report.path}")  # fmt: skip
    if report.missing:
        typer.echo(
            f"{len(report.missing)} subjects without a cache shard: {', '.join(report.missing)}", err=True
        )
        raise typer.Exit(2)
