"""The `lwaffect` typer app: its command group, the exit-status rules and the helpers every command uses.

Exit status: 0 when everything succeeded, 1 for a usage or configuration error (the parser's own: an
unknown flag, a missing option, a value not among the choices; or one the command finds: a missing folder,
a cache made with other settings), 2 when the run finished but some inputs failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from typer.core import TyperGroup

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
