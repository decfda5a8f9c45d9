"""`lwaffect info` lists the registry and prints the facts table of one model."""

from typer.testing import CliRunner

from jobs.cli import app
from model.configs import MODEL_CONFIGS
from model.tasks import TASKS


def test_info_lists_configs_and_tasks():
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for name in [*MODEL_CONFIGS, *TASKS]:
        assert f"  {name} " in result.output


def test_info_prints_the_facts_of_one_model():
    result = CliRunner().invoke(app, ["info", "--model", "tam_s1", "--task", "au"])
    assert result.exit_code == 0, result.output
    assert "cache bytes/frame (float16)  137,984" in result.output
    assert "GFLOPs/frame, tail + TAM" in result.output and "parameters, trainable" in result.output


def test_info_refuses_unknown_or_partial_requests():
    result = CliRunner().invoke(app, ["info", "--model", "tam_s9", "--task", "au"])
    assert result.exit_code == 1 and "known configs" in result.output
    result = CliRunner().invoke(app, ["info", "--model", "tam_s1"])
    assert result.exit_code == 1 and "--task" in result.output
