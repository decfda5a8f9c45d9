"""The `lwaffect` typer app: its command group, the exit-status rules and the helpers every command uses.

Exit status: 0 when everything succeeded, 1 for a usage or configuration error (the parser's own: an
unknown flag, a missing option, a value not among the choices; or one the command finds: a missing folder,
a cache made with other settings), 2 when the run finished but some inputs failed.

A command that has written and closed everything may call `end_at_once`: the program (`lwaffect`,
`python -m jobs`) then ends once the command returns, after the exit handlers, without tearing the
interpreter down (freeing torch's and Ray's modules object by object takes 1.3 s on 2 cores and writes
nothing). Callers inside a process (the tests' `CliRunner`) never end that way.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
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


_END_AT_ONCE = threading.Event()  # set by `end_at_once`


def end_at_once() -> None:
    """Once this command returns, the program ends without the interpreter's teardown (see above)."""
    _END_AT_ONCE.set()


class _App(typer.Typer):
    """The typer app; called as the program, it ends at once where the command asked to (`end_at_once`)."""

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as done:
            if _END_AT_ONCE.is_set() and (done.code is None or isinstance(done.code, int)):
                _end(done.code or 0)
            raise


def _end(code: int) -> None:
    """What a normal exit does, the interpreter's teardown left out: wait for the other threads that are
    not daemons, run the exit handlers, flush the standard streams, end the process."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


app = _App(
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
