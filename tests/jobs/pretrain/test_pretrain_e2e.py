"""`lwaffect pretrain` end to end: a synthetic AffectNet set, a few epochs at 112 px, the weights file read
back by `lwaffect extract` (real decode, MTCNN, timm, local Ray) on a synthetic Aff-Wild2 video.

The bound: validation macro F1 over classes 0..7 of at least 0.5, against a chance level computed from the
validation set's class mix (the best of a uniform guess, the training set's majority class and guesses
drawn with the training set's class shares; 0.125 here). Measured on this machine: 0.82 after 8 epochs
of 120 training images (105 of classes 0..7; 34 validation images of classes 0..7), 34 s of training.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from jobs.cli import app
from jobs.extract.config import ExtractConfig
from jobs.extract.driver import extract
from model.backbone import BackboneConfig
from model.pretrain import AFFECTNET_CLASSES
from pipeline.cache.read import open_cache
from pipeline.datasets.affectnet import read_affectnet

pytestmark = pytest.mark.slow
BOUND = 0.5  # validation macro F1 the run must reach


def chance_macro_f1(train: list[int], validation: list[int], k: int = AFFECTNET_CLASSES) -> float:
    """The best macro F1 (over the classes present in validation) of three label-blind guessers."""
    q = np.bincount(validation, minlength=k) / len(validation)  # validation shares
    p = np.bincount(train, minlength=k) / len(train)  # training shares
    present = q > 0

    def macro(precision: np.ndarray, recall: np.ndarray) -> float:
        f1 = np.divide(
            2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0
        )
        return float(f1[present].mean())

    uniform = macro(q, np.full(k, 1 / k))  # each class guessed 1/k of the time
    onehot = (np.arange(k) == p.argmax()).astype(float)  # always the training set's majority class
    majority = macro(q * onehot, onehot)
    shares = macro(q, p)  # guessed with the training shares
    return max(uniform, majority, shares)


def test_pretrain_reaches_the_bound_and_its_weights_extract(tmp_path, synth_affwild2):
    data, out = tmp_path / "affectnet", tmp_path / "backbone.safetensors"
    runner = CliRunner()
    made = runner.invoke(app, ["synth", "--layout", "affectnet", "--output", str(data), "--images", "160",
                               "--image-size", "128"])  # fmt: skip
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["pretrain", "--input", str(data), "--output", str(out), "--epochs", "8",
                                 "--batch-size", "16", "--lr", "3e-3", "--workers", "0", "--threads", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "backbone.safetensors.pretrain" / "log.jsonl").open()]
    epochs = [r for r in records if "epoch" in r]
    assert [r["epoch"] for r in epochs] == list(range(1, 9))
    best = max(r["macro_f1"] for r in epochs)
    affectnet = read_affectnet(data)
    chance = chance_macro_f1([i.expression for i in affectnet.train if i.expression < AFFECTNET_CLASSES],
                             [i.expression for i in affectnet.validation if i.expression < AFFECTNET_CLASSES])  # fmt: skip
    print(f"validation macro F1 {best:.3f}, chance {chance:.3f}, bound {BOUND}")
    assert chance < 0.2 and best >= BOUND > 3 * chance
    assert "macro F1" in result.output and "CCC valence" in result.output

    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["input_size"]) == 112 and len(json.loads(meta["mean"])) == 3

    manifest = json.loads((synth_affwild2 / "synth_manifest.json").read_text())
    video = min((v for v in manifest["videos"] if len(v["subjects"]) == 1), key=lambda v: v["frames"])
    cache = tmp_path / "cache"
    report = extract(ExtractConfig(input=synth_affwild2, cache=str(cache), subjects=tuple(video["subjects"]),
                                   backbone=BackboneConfig(weights=str(out))), say=lambda line: None)  # fmt: skip
    assert not report.failures, report.failures
    opened = open_cache(str(cache))
    spec = opened.spec
    assert spec["weights_hash"].startswith("sha256:") and spec["weights"] == str(out)
    assert spec["normalization"] == {
        "mean": json.loads(meta["mean"]),
        "std": json.loads(meta["std"]),
        "source": "file",
    }
    rows = opened.read(video["subjects"][0])
    assert rows.face.any() and all(np.isfinite(m[rows.face]).all() for m in rows.maps)
