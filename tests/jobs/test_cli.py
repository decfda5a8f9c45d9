"""The CLI lists every command of the design's table and reports its version."""

from typer.testing import CliRunner

from jobs.cli import app
from model import __version__

COMMANDS = [
    "run",
    "extract",
    "train",
    "predict",
    "submit",
    "evaluate",
    "check-submission",
    "synth",
    "bench",
    "info",
]


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output, command


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
