"""The `lwaffect` command line: each command turns flags into a config and makes one library call.

Heavy imports (torch, ray, decord) happen inside the commands so that `lwaffect --help` stays instant.
Exit status: 0 when everything succeeded, 1 for a usage or configuration error, 2 when the run finished
but some inputs failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from model import __version__

app = typer.Typer(
    name="lwaffect",
    help="Facial affect analysis for folders of videos: features, training, per-frame predictions and "
    "ABAW submission files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Task = Annotated[str, typer.Option("--task", "-t", help="Task: va, au, expr, ah or emi.")]
Input = Annotated[
    Path, typer.Option("--input", "-i", help="Input folder (Aff-Wild2, EMI, AH layout or plain).")
]
Split = Annotated[str, typer.Option("--split", "-s", help="Split: train, validation, test or all.")]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)."),
]


def _not_built(command: str) -> None:
    typer.echo(f"lwaffect {command}: not built yet in this version ({__version__}).", err=True)
    raise typer.Exit(1)


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
) -> None:
    """Extract (reusing the cache), predict, fill and write OUT/predictions/T.parquet and the submission."""
    _not_built("run")


@app.command()
def extract(
    input: Input,
    cache: Annotated[str, typer.Option(help="Cache location: a folder or a pyarrow filesystem URI.")],
    split: Split = "all",
    address: Address = None,
) -> None:
    """Precompute the feature cache (one Parquet shard per video and subject); resumable."""
    _not_built("extract")


@app.command()
def train(
    task: Task,
    input: Input,
    cache: Annotated[str, typer.Option(help="Feature cache made by `lwaffect extract`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint folder.")],
) -> None:
    """Train the temporal model on cached features; keeps the best checkpoint by the official metric."""
    _not_built("train")


@app.command()
def predict(
    task: Task,
    cache: Annotated[str, typer.Option(help="Feature cache made by `lwaffect extract`.")],
    weights: Annotated[Path, typer.Option(help="Checkpoint made by `lwaffect train`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")],
) -> None:
    """Per-frame predictions from a cache: OUT/predictions/T.parquet."""
    _not_built("predict")


@app.command()
def submit(
    task: Task,
    predictions: Annotated[Path, typer.Option(help="Predictions Parquet from `predict` or `run`.")],
    input: Input,
    output: Annotated[Path, typer.Option("--output", "-o", help="Submission file to write.")],
) -> None:
    """Write the challenge submission file for the test split."""
    _not_built("submit")


@app.command()
def evaluate(
    task: Task,
    predictions: Annotated[Path, typer.Option(help="Predictions Parquet or ABAW-format predictions.txt.")],
    input: Input,
    split: Split = "validation",
) -> None:
    """Official metrics of a predictions file against the labels of a split."""
    _not_built("evaluate")


@app.command("check-submission")
def check_submission(
    task: Task,
    file: Annotated[Path, typer.Argument(help="Submission file to check.")],
    input: Input,
) -> None:
    """Validate a submission file against the test list and frame counts; lists every problem."""
    _not_built("check-submission")


@app.command()
def synth(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the data set into.")],
) -> None:
    """Make a synthetic data set of real H.264 videos of a real face, with labels and true face boxes."""
    _not_built("synth")


@app.command()
def bench() -> None:
    """Per-stage and end-to-end throughput, memory and cache size against a naive per-frame loop."""
    _not_built("bench")


@app.command()
def info() -> None:
    """Registered model configs and tasks; parameters, GFLOPs and cached bytes per frame of one."""
    _not_built("info")
