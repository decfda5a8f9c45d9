"""`lwaffect submit`, `evaluate`, `check-submission`: the commands that turn predictions into files and scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.app import _fails_with_1, app
from jobs.cli.options import (
    Average,
    Input,
    Split,
    Task,
)


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
