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


def test_info_prints_bytes_and_trained_parameters_per_n_at_the_chosen_size():
    from model.backbone import BackboneConfig, build_backbone

    result = CliRunner().invoke(app, ["info", "--input-size", "112"])
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("trainable backbone blocks at 112 px") :].splitlines()[2:]
    assert [line.split()[0] for line in table] == ["0", "1", "2", "3", "4", "5"]
    three = build_backbone(BackboneConfig(trainable_blocks=3, input_size=112))
    assert three.cached_shapes == ((64, 14, 14),)
    assert "s8 64x14x14" in table[3] and f"{2 * 64 * 14 * 14:,}" in table[3]
    assert f"{sum(p.numel() for p in three.tail.parameters()):,}" in table[3]
    trained = [int(line.split()[-1].replace(",", "")) for line in table]
    assert trained == sorted(trained) and trained[0] < trained[5]  # more blocks, more to train
