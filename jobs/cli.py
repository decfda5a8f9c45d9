"""The `lwaffect` command line: each command turns flags into a config and makes one library call.

Heavy imports (torch, ray, decord) happen inside the commands so that `lwaffect --help` stays instant.
Exit status: 0 when everything succeeded, 1 for a usage or configuration error (the parser's own: an
unknown flag, a missing option, a value not among the choices; or one the command finds: a missing folder,
a cache made with other settings), 2 when the run finished but some inputs failed. The choices and the
option types shared by several commands are in jobs/options.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from jobs.options import (
    Address,
    Average,
    Cache,
    DeviceName,
    Faces,
    Fill,
    Input,
    Layout,
    Resolution,
    Split,
    SplitName,
    Subject,
    Task,
    TaskName,
)
from model import __version__


@contextmanager
def _usage_exit_1() -> Iterator[None]:
    """The parser's usage errors (click's exit status 2) exit 1: 2 means that some inputs failed."""
    try:
        yield
    except typer.TyperException as e:
        if getattr(e, "exit_code", None) == 2:
            e.exit_code = 1  # type: ignore[attr-defined]
        raise


class _Commands(TyperGroup):
    """The `lwaffect` command group, whose parser errors exit 1 like every other usage error."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        with _usage_exit_1():
            return super().parse_args(ctx, args)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        with _usage_exit_1():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Commands,
    name="lwaffect",
    help="Facial affect analysis for folders of videos: features, training, per-frame predictions and "
    "ABAW submission files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _say(line: str) -> None:
    typer.echo(line, err=True)


@contextmanager
def _fails_with_1(command: str, *errors: type[Exception]) -> Iterator[None]:
    """`errors` raised inside are a usage or configuration error: `lwaffect COMMAND: why`, exit 1."""
    try:
        yield
    except errors as e:
        typer.echo(f"lwaffect {command}: {e}", err=True)
        raise typer.Exit(1) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lwaffect {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """lwaffect: MobileNetV4 + multi-scale 3D MLP-Mixer affect models over video folders."""


@app.command()
def run(
    input: Input,
    task: Task,
    weights: Annotated[Path | None, typer.Option(help="Checkpoint made by `lwaffect train`.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("out"),
    split: Split = "test",
    cache: Annotated[Path | None, typer.Option(help="Feature cache (default: OUTPUT/cache).")] = None,
    address: Address = None,
    stride: Annotated[
        int | None, typer.Option(min=1, help="Frames between prediction windows (default: the checkpoint's).")
    ] = None,
    fill: Fill = "linear",
    device: Annotated[str, typer.Option(help="Device of the temporal model: cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Extract (reusing the cache), predict, fill and write OUT/predictions/T.parquet and the submission.

    Exit status 0 when every video succeeded and the submission checks, 2 when some failed (listed in
    OUT/failures.parquet), 1 for a usage or configuration error.
    """
    from jobs.run import RunConfig
    from jobs.run import run as run_all

    cfg = RunConfig(input=input, task=task, weights=weights, output=output, split=split,
                    cache=None if cache is None else str(cache), address=address, stride=stride,
                    fill=fill, device=device)  # fmt: skip
    with _fails_with_1("run", ValueError, OSError):
        report = run_all(cfg, say=_say)
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
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only this subject (repeatable; default: the whole split)."),
    ] = None,
) -> None:
    """Precompute the feature cache (one Parquet shard per subject); resumable.

    Exit status 0 when every video was cached, 2 when some failed (listed in CACHE/failures.parquet),
    1 for a usage or configuration error (e.g. a cache made with other settings, without --rebuild).
    """
    from jobs.extract.config import ExtractConfig, FaceSettings
    from jobs.extract.driver import extract as run_extract
    from model.backbone import BackboneConfig

    weights = None if backbone_weights is None else str(backbone_weights)
    if weights is None and not pretrained:
        typer.echo(
            "note: randomly initialised backbone (pass --backbone-weights FILE or --pretrained)", err=True
        )
    cfg = ExtractConfig(input=input, cache=cache, split=split, subject=subject, faces=FaceSettings(mode=faces),
                        backbone=BackboneConfig(pretrained=pretrained, weights=weights), device=device,
                        address=address, rebuild=rebuild,
                        subjects=tuple(only) if only else None)  # fmt: skip
    with _fails_with_1("extract", ValueError, OSError, RuntimeError):
        report = run_extract(cfg, say=_say)
    for failure in report.failures:
        typer.echo(f"failed: {failure.subject} ({failure.stage}): {failure.reason}")
    raise typer.Exit(report.exit_code)


@app.command()
def train(
    task: Task,
    input: Input,
    cache: Cache,
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint folder.")],
    config: Annotated[str, typer.Option(help="Model config: tam_s1, tam_s2 or tam_s3.")] = "tam_s1",
    epochs: Annotated[int, typer.Option(min=1, help="Maximum number of epochs.")] = 20,
    seq_len: Annotated[int, typer.Option(min=1, help="Frames per window.")] = 32,
    stride: Annotated[int, typer.Option(min=1, help="Frames between training windows.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up + cosine).")] = 1e-3,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per step.")] = 16,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of weights, dropout and window order.")] = 0,
    patience: Annotated[int, typer.Option(min=1, help="Epochs without improvement before stopping.")] = 5,
    ema: Annotated[float, typer.Option(help="EMA decay of the weights; 0 disables it.")] = 0.0,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast around the model.")] = False,
    allow_missing: Annotated[
        bool, typer.Option(help="Train on the cached subjects only when some shards are missing.")
    ] = False,
    backbone_weights: Annotated[
        Path | None, typer.Option(help="Backbone weights file the cache was made with (if not where it was).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch CPU threads (default: one per core).")
    ] = None,
) -> None:
    """Train the temporal model on cached features; keeps the best checkpoint by the official metric."""
    from jobs.train.trainer import TrainConfig, TrainError
    from jobs.train.trainer import train as run_training

    cfg = TrainConfig(task=task, input=input, cache=cache, output=output, config=config, epochs=epochs,
                      seq_len=seq_len, stride=stride, lr=lr, batch_size=batch_size, device=device, seed=seed,
                      patience=patience, ema=ema, bf16=bf16, allow_missing=allow_missing, threads=threads,
                      backbone_weights=None if backbone_weights is None else str(backbone_weights))  # fmt: skip
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
) -> None:
    """Per-frame predictions from a cache: OUT/predictions/T.parquet (frames without a face filled)."""
    from jobs.predict import PredictConfig
    from jobs.predict import predict as run_predict

    cfg = PredictConfig(task=task, cache=cache, weights=weights, output=output, stride=stride,
                        fill=fill, split=split, input=input, device=device)  # fmt: skip
    with _fails_with_1("predict", ValueError, OSError):
        report = run_predict(cfg, say=_say)
    typer.echo(f"{report.frames} {'clips' if task == 'emi' else 'frames'} of {report.subjects} subjects "
               f"({report.filled} filled, {report.frames_per_s:.0f}/s): {report.path}")  # fmt: skip
    if report.missing:
        typer.echo(
            f"{len(report.missing)} subjects without a cache shard: {', '.join(report.missing)}", err=True
        )
        raise typer.Exit(2)


@app.command()
def submit(
    task: Task,
    predictions: Annotated[Path, typer.Option(help="Predictions Parquet from `predict` or `run`.")],
    input: Input,
    output: Annotated[Path, typer.Option("--output", "-o", help="Submission file to write.")],
    strict: Annotated[
        bool, typer.Option(help="Frames the organiser example lists but predictions lack are an error.")
    ] = False,
) -> None:
    """Write the challenge submission file for the test split and check it; exit 1 on any problem."""
    from jobs.evaluate import USER_ERRORS, SubmitConfig, submit_predictions

    with _fails_with_1("submit", *USER_ERRORS):
        done = submit_predictions(SubmitConfig(task, predictions, input, output, strict=strict))
    for note in done.report.notes():
        typer.echo(note)
    for problem in done.problems:
        typer.echo(f"{output}: {problem}", err=True)
    if done.problems:
        typer.echo(f"{len(done.problems)} problems in {output}", err=True)
        raise typer.Exit(1)


@app.command()
def evaluate(
    task: Task,
    predictions: Annotated[Path, typer.Option(help="Predictions Parquet or ABAW-format predictions.txt.")],
    input: Input,
    split: Split = "validation",
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    allow_missing: Annotated[
        bool, typer.Option(help="Leave labelled frames without a prediction out of the score; count them.")
    ] = False,
    average: Average = "macro",
) -> None:
    """Official metrics of a predictions file against the labels of a split."""
    import json as json_lib

    from jobs.evaluate import USER_ERRORS, EvaluateConfig, evaluate_predictions

    with _fails_with_1("evaluate", *USER_ERRORS):
        cfg = EvaluateConfig(task, predictions, input, split, allow_missing, average)
        evaluation = evaluate_predictions(cfg)
    typer.echo(json_lib.dumps(evaluation.to_dict(), indent=2) if json else evaluation.table())


@app.command("check-submission")
def check_submission(
    task: Task,
    file: Annotated[Path, typer.Argument(help="Submission file to check.")],
    input: Input,
    predictions: Annotated[
        Path | None, typer.Option(help="Predictions whose frame counts fix the expected lines.")
    ] = None,
) -> None:
    """Validate a submission file against the test list and frame counts; lists every problem."""
    from jobs.evaluate import USER_ERRORS, CheckConfig, check_submission_file

    with _fails_with_1("check-submission", *USER_ERRORS):
        problems = check_submission_file(CheckConfig(task, file, input, predictions))
    for problem in problems:
        typer.echo(f"{file}: {problem}")
    if problems:
        typer.echo(f"{len(problems)} problems in {file}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{file}: valid {task} submission")


@app.command()
def synth(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the data set into.")],
    layout: Layout = "affwild2",
    videos: Annotated[
        int | None, typer.Option(help="Number of videos (default: 8 affwild2, 9 emi, 8 ah).")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option(help="Seconds per video (default: 3 affwild2, 2 emi and ah).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed makes the same data set.")] = 0,
) -> None:
    """Make a synthetic data set of real H.264 videos of a real face, with labels and true face boxes."""
    import json
    import time

    from pipeline.synth.common import SynthConfig
    from pipeline.synth.dataset import make_dataset

    cfg = SynthConfig(output=output, layout=layout, videos=videos, seconds=seconds, seed=seed)
    with _fails_with_1("synth", ValueError):
        cfg.check()
    start = time.perf_counter()
    manifest_path = make_dataset(cfg, say=lambda line: typer.echo(f"  {line}"))
    manifest = json.loads(manifest_path.read_text())
    frames = sum(v["frames"] for v in manifest["videos"])
    typer.echo(
        f"wrote {len(manifest['videos'])} videos, {frames:,} frames, {len(manifest['subjects'])} subjects "
        f"({layout} layout) to {output} in {time.perf_counter() - start:.1f} s"
    )
    typer.echo(f"manifest: {manifest_path}; true face boxes: {output / manifest['truth']}/")
    try:  # the catalogue as the data set adapters read it
        from pipeline.datasets import load_catalogue
        from pipeline.datasets.summary import format_summary
    except ImportError:
        return
    try:
        typer.echo("\n" + format_summary(load_catalogue(output, layout)))
    except ValueError as e:
        typer.echo(f"lwaffect synth: the catalogue of {output} could not be read: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def bench(
    videos: Annotated[int, typer.Option(min=1, help="Synthetic videos to make and measure.")] = 2,
    resolution: Resolution = "720p",
    seconds: Annotated[float, typer.Option(min=0.1, help="Length of each video in seconds.")] = 10.0,
    device: Annotated[DeviceName, typer.Option(help="Where the models run: cpu or cuda.")] = "cpu",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for bench.json and bench.md.")
    ] = Path("bench-out"),
    repeats: Annotated[
        int, typer.Option(min=1, help="Runs of each short stage (the median is reported).")
    ] = 3,
    memory_seconds: Annotated[
        float, typer.Option(min=0.0, help="Short video of the memory test (the long one is 10x); 0 skips it.")
    ] = 6.0,
    naive_frames: Annotated[int, typer.Option(min=1, help="Frames per video through the naive loop.")] = 20,
) -> None:
    """Per-stage and end-to-end throughput, memory and cache size against a naive per-frame loop.

    Makes its own synthetic videos; writes OUTPUT/bench.json and OUTPUT/bench.md and prints the table.
    """
    from jobs.bench.report import markdown
    from jobs.bench.suite import BenchConfig, run_bench

    with _fails_with_1("bench", ValueError):
        cfg = BenchConfig(output=output, videos=videos, resolution=resolution, seconds=seconds, device=device,
                          repeats=repeats, memory_seconds=memory_seconds, naive_frames=naive_frames)  # fmt: skip
    figures = run_bench(cfg, say=_say)
    typer.echo(markdown(figures))
    typer.echo(f"\nwritten: {output / 'bench.json'}, {output / 'bench.md'}", err=True)


@app.command()
def info(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model config to describe, e.g. tam_s1.")
    ] = None,
    task: Annotated[
        TaskName | None, typer.Option("--task", "-t", help="Task of the described model.")
    ] = None,
) -> None:
    """Registered model configs and tasks; parameters, GFLOPs and cached bytes per frame of one."""
    from jobs.info import facts_text, registry_text

    if model is None and task is None:
        typer.echo(registry_text())
        return
    if model is None or task is None:
        typer.echo("lwaffect info: give both --model NAME and --task T (or neither to list them)", err=True)
        raise typer.Exit(1)
    with _fails_with_1("info", ValueError):
        typer.echo(facts_text(model, task))
