"""`lwaffect pretrain` in small: class weights, augmentation, settings, a one-epoch run on a tiny cropped set
that a rerun goes on from, refuses to resume with other settings, and whose file the backbone loads."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from jobs.cli import app
from jobs.pretrain.config import PretrainConfig, PretrainError
from jobs.pretrain.data import augment, class_weights
from jobs.pretrain.driver import pretrain, read_pretrain_log
from model.backbone import BackboneConfig, build_backbone
from pipeline.synth.common import SynthConfig
from pipeline.synth.dataset import make_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_class_weights_balance_the_classes_seen():
    weights = class_weights([0, 0, 0, 1, 2, 2, 8, 9, 10])  # 8..10 do not count
    counts = [3, 1, 2, 0, 0, 0, 0, 0]
    assert weights[3:] == [0.0] * 5
    assert [w * c for w, c in zip(weights, counts, strict=True)][:3] == pytest.approx([6 / 8] * 3)


def test_augment_is_seeded_and_off_when_asked():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    same = augment(images, torch.Generator().manual_seed(0), False, 0.0, 0.0)
    torch.testing.assert_close(same, images.float())
    a = augment(images, torch.Generator().manual_seed(1), True, 0.1, 0.2)
    b = augment(images, torch.Generator().manual_seed(1), True, 0.1, 0.2)
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, images.float())
    assert 0 <= a.min() and a.max() <= 255


def test_settings_are_checked(tmp_path):
    for changes, why in (({"output": tmp_path / "b.pth"}, ".safetensors"), ({"input_size": 100}, "multiple of 16"),
                         ({"va_loss": "l1"}, "ccc, mse"),
                         ({"backbone_weights": tmp_path / "none.pth"}, "does not exist")):  # fmt: skip
        cfg = PretrainConfig(**{"input": tmp_path, "output": tmp_path / "b.safetensors", **changes})
        with pytest.raises(PretrainError, match=why):
            cfg.check()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("affectnet_tiny")
    make_dataset(
        SynthConfig(output=root, layout="affectnet", images=32, image_size=64, affectnet_format="cropped")
    )
    return root


def test_a_run_resumes_and_its_file_loads(tiny, tmp_path):
    out = tmp_path / "bb.safetensors"
    cfg = PretrainConfig(input=tiny, output=out, input_size=64, epochs=1, batch_size=8, workers=0, threads=1)
    lines: list[str] = []
    first = pretrain(cfg, say=lines.append)
    assert first.epochs == 1 and first.best_epoch == 1 and out.is_file()
    assert set(first.best) == {"accuracy", "macro_f1", "ccc_valence", "ccc_arousal"}
    again = pretrain(PretrainConfig(**{**vars(cfg), "epochs": 2}), say=lines.append)
    assert again.epochs == 2 and any(line.startswith("resuming after epoch 1") for line in lines)
    log = read_pretrain_log(cfg)
    assert [r["epoch"] for r in log if "epoch" in r] == [1, 2] and log[0]["event"] == "start"
    assert sum(1 for line in lines if line.startswith("epoch ")) == 2  # one printed line per epoch

    bb = build_backbone(BackboneConfig(weights=str(out), input_size=64))
    assert bb.weights_input_size == 64 and bb.normalization_source == "file" and bb.dropped_keys == ()
    with pytest.raises(PretrainError, match=r"other settings \(lr: 0.001 -> 0.01\)"):
        pretrain(PretrainConfig(**{**vars(cfg), "epochs": 3, "lr": 1e-2}), say=lines.append)


def test_bad_folders_exit_1_naming_them(tmp_path):
    (tmp_path / "Manually_Annotated_Images").mkdir()
    result = CliRunner().invoke(
        app, ["pretrain", "--input", str(tmp_path), "--output", str(tmp_path / "b.safetensors")]
    )
    assert result.exit_code == 1
    assert f"lwaffect pretrain: AffectNet folder {tmp_path}: training.csv is missing" in result.output


def test_a_start_file_gives_its_normalisation_and_the_hub_fails_clearly(tiny, tmp_path, monkeypatch):
    import timm
    from safetensors import safe_open
    from safetensors.torch import save_file

    import model.weights as weights_module
    from model.weights import BackboneWeightsError, weights_metadata

    body = timm.create_model("mobilenetv4_conv_small", features_only=True, out_indices=(2, 3, 4))
    start = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in body.state_dict().items()}, start,
              metadata=weights_metadata((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 64))  # fmt: skip
    out = tmp_path / "bb.safetensors"
    cfg = PretrainConfig(input=tiny, output=out, backbone_weights=start, input_size=64, epochs=1, batch_size=8,
                         workers=0, threads=1)  # fmt: skip
    pretrain(cfg, say=lambda line: None)
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["mean"] == "[0.5, 0.5, 0.5]" and meta["std"] == "[0.25, 0.25, 0.25]"
    assert meta["normalization_source"] == "file"

    monkeypatch.setattr(weights_module, "_hub_reachable", lambda timeout=3.0: False)
    hub = PretrainConfig(input=tiny, output=tmp_path / "hub.safetensors", pretrained=True, workers=0)
    with pytest.raises(BackboneWeightsError, match="--backbone-weights FILE"):
        pretrain(hub, say=lambda line: None)
