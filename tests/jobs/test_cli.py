"""The CLI lists every command of the design's table, its help and choices, and reports its version."""

from typing import get_args

import pytest
from typer.testing import CliRunner

from jobs.bench.videos import RESOLUTIONS
from jobs.cli import app, options
from jobs.cli.pretrain import VaLossName
from jobs.pretrain.config import VA_LOSSES
from model import __version__
from model.affect import BackboneBN
from model.tasks import SPLITS, TASKS
from pipeline.cache.crops import CACHE_KINDS
from pipeline.fill import FillMethod
from pipeline.metrics import Average
from pipeline.synth.common import AFFECTNET_FORMATS, LAYOUTS
from pipeline.synth.hard import VARIANTS
from pipeline.temporal.augment import AUGMENTS

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
    "pretrain",
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


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"lwaffect {command}" in result.output


@pytest.mark.parametrize(
    "command, choices",
    [
        (
            "run",
            [
                "<train|validation|test|all>",
                "<linear|nearest>",
                "--trainable-blocks",
                "<112|224>",
                "<train|frozen>",
                "<maps|crops>",
                "<none|standard>",
            ],
        ),
        ("info", ["--trainable-blocks", "<112|224>"]),
        (
            "train",
            ["<va|au|expr|ah|emi>", "--trainable-blocks", "<112|224>", "<train|frozen>", "<none|standard>"],
        ),
        (
            "extract",
            [
                "<auto|main>",
                "<detect|cropped-aligned>",
                "<cpu|cuda>",
                "--trainable-blocks",
                "<112|224>",
                "<maps|crops>",
            ],
        ),
        ("evaluate", ["<macro|binary>"]),
        ("synth", ["<affwild2|emi|ah|affectnet>", "<original|cropped>"]),
        ("pretrain", ["<ccc|mse>"]),
        ("bench", ["<360p|480p|720p|1080p>", "<cpu|cuda>"]),
    ],
)
def test_help_lists_the_choices(command, choices):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    for choice in choices:
        assert choice in result.output, choice


@pytest.mark.parametrize("command", ["synth", "bench"])
def test_help_names_every_hard_variant(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.replace("│", " ").split())  # the help's words, without its box
    for variant in VARIANTS:
        assert variant in text, variant


def test_an_invalid_choice_exits_1_naming_the_choices():
    args = ["train", "--task", "xx", "--input", "in", "--cache", "cache", "--output", "out"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "--task" in result.output and "'xx' is not one of" in result.output
    for task in TASKS:
        assert f"'{task}'" in result.output, task


@pytest.mark.parametrize(
    "choice, values",
    [
        (options.TaskName, tuple(TASKS)),
        (options.SplitName, SPLITS),
        (options.FillName, get_args(FillMethod)),
        (options.AverageName, get_args(Average)),
        (options.LayoutName, LAYOUTS),
        (options.AffectNetFormatName, AFFECTNET_FORMATS),
        (VaLossName, VA_LOSSES),
        (options.ResolutionName, tuple(RESOLUTIONS)),
        (options.BackboneBNName, get_args(BackboneBN)),
        (options.CacheKindName, CACHE_KINDS),
        (options.AugmentName, AUGMENTS),
    ],
)
def test_choices_are_the_library_values(choice, values):
    assert get_args(choice) == values


@pytest.mark.parametrize(
    "args", [["nocommand"], ["run"], ["extract", "--input", "in", "--cache", "c", "--no-such-flag"]]
)
def test_parser_errors_are_usage_errors_exit_1(args):
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "Usage:" in result.output
