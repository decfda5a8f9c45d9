"""`lwaffect train`: a small run end to end on a fake cache, determinism, resume, missing shards, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import jobs.train.trainer as train_job
from jobs.cli import app
from jobs.train.trainer import TrainConfig, TrainError, train
from model.backbone import RANDOM_INIT
from model.checkpoint import load_checkpoint
from pipeline.temporal.predictor import check_cache_spec
from pipeline.temporal.stats import map_statistics
from tests.helpers import FakeCache

SHAPES = ((64, 28, 28), (96, 14, 14))
FRAMES = {"t1": 12, "t2_left": 10, "t2_right": 10, "v1": 9, "v2": 6}


class MapsCache(FakeCache):
    """A fake cache with the real boundary shapes: maps are a fixed random pattern times the valence."""

    def __init__(self, frames):
        super().__init__(frames, shapes=SHAPES)
        rng = np.random.default_rng(0)
        self.pattern = tuple(rng.normal(size=s).astype(np.float16) for s in SHAPES)
        self.spec = {"backbone": "mobilenetv4_conv_small", "weights_hash": RANDOM_INIT, "input_size": 224,
                     "boundary": [list(SHAPES[0]), list(SHAPES[1])]}  # fmt: skip

    def read(self, subject, start=0, stop=None, maps=True):
        out = super().read(subject, start, stop, maps)
        if not maps:
            return out
        level = np.sin(out.index.astype(np.float32) + self.ids[subject])[:, None, None, None]
        out.maps = tuple((level * p).astype(np.float16) for p in self.pattern)
        return out


def fake_catalogue(task="va"):
    def labels(subject):
        n = FRAMES[subject]
        idx = np.arange(n)
        valence = np.sin(idx + list(FRAMES).index(subject)) * 0.8
        if task == "au":
            values = (np.sin(idx[:, None] + np.arange(12)) > 0).astype(np.float32)
        elif task == "emi":  # one row per clip
            level = list(FRAMES).index(subject) / len(FRAMES)
            return SimpleNamespace(values=np.full((1, 6), level, np.float32), valid=np.ones(1, bool))
        else:
            values = np.stack([valence, -valence], axis=1).astype(np.float32)
        return SimpleNamespace(values=values, valid=np.ones(n, bool))

    splits = {"train": ["t1", "t2_left", "t2_right"], "validation": ["v1", "v2"]}
    return SimpleNamespace(
        labels={(task, s): labels(s) for s in FRAMES},
        subjects_in=lambda t, split: [SimpleNamespace(name=s) for s in splits.get(split, [])],
        errors=[],
    )


@pytest.fixture
def fakes(monkeypatch):
    cache = MapsCache(FRAMES)
    monkeypatch.setattr(train_job, "open_cache", lambda location: cache)
    monkeypatch.setattr(train_job, "load_catalogue", lambda root, **kw: fake_catalogue(task="va"))
    return cache


def config(tmp_path, **kw):
    base = dict(task="va", input=tmp_path / "data", cache=str(tmp_path / "cache"), output=tmp_path / "out",
                epochs=1, seq_len=4, stride=4, batch_size=4, lr=3e-3, log_every=1, patience=5,
                threads=1)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def log_of(cfg):
    return [json.loads(line) for line in (cfg.output / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted two-epoch run, shared by the tests that only read what it wrote."""
    tmp_path = tmp_path_factory.mktemp("straight")
    cache, lines = MapsCache(FRAMES), []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_job, "open_cache", lambda location: cache)
        mp.setattr(train_job, "load_catalogue", lambda root, **kw: fake_catalogue(task="va"))
        cfg = config(tmp_path, epochs=2)
        return SimpleNamespace(cfg=cfg, result=train(cfg, say=lines.append), lines=lines, cache=cache)


def test_a_run_writes_the_best_checkpoint_log_and_state(straight):
    result, cfg = straight.result, straight.cfg
    assert result.epochs_run == 2 and result.resumed_from == 0
    assert result.checkpoint.exists() and (cfg.output / "last.pt").exists()
    epochs = [r for r in log_of(cfg) if "epoch" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) and -1 <= r["metric"] <= 1 for r in epochs)
    assert result.best_metric == max(r["metric"] for r in epochs)
    model, meta = load_checkpoint(result.checkpoint, expect_task="va")
    check_cache_spec(meta, straight.cache.spec)
    assert meta["seq_len"] == 4 and meta["metric"]["value"] == pytest.approx(result.best_metric)
    assert meta["epoch"] == result.best_epoch
    # the TAM reads the maps standardised with the training subjects' statistics, kept in the checkpoint
    expected = map_statistics(straight.cache, ["t1", "t2_left", "t2_right"])
    for k, (mean, std) in enumerate(expected):
        torch.testing.assert_close(getattr(model.standardise, f"mean{k}"), mean)
        torch.testing.assert_close(getattr(model.standardise, f"std{k}"), std)
    assert any("epoch 2/2" in line for line in straight.lines)
    assert any(line.startswith("[epoch 1] 1/") and "steps" in line for line in straight.lines)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, fakes, monkeypatch, straight):
    cfg = config(tmp_path, epochs=2)
    real_validate = train_job.validate
    calls = []

    def interrupt_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(train_job, "validate", interrupt_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, say=lambda _: None)
    monkeypatch.setattr(train_job, "validate", real_validate)
    resumed = train(cfg, say=lambda _: None)
    assert resumed.resumed_from == 1 and resumed.epochs_run == 2
    # same seed, same weights: the resumed run ends where the uninterrupted one did
    a = torch.load(straight.cfg.output / "last.pt", weights_only=True)
    b = torch.load(cfg.output / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert resumed.best_metric == pytest.approx(straight.result.best_metric)


def test_another_seed_gives_other_weights(tmp_path, fakes, straight):
    other = train(config(tmp_path, epochs=2, seed=1), say=lambda _: None)
    a = torch.load(straight.cfg.output / "last.pt", weights_only=True)["model"]
    c = torch.load(other.checkpoint.parent / "last.pt", weights_only=True)["model"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_rerun_resumes_after_the_last_completed_epoch_or_starts_over(tmp_path, fakes):
    cfg = config(tmp_path, epochs=2)
    train(replace(cfg, epochs=1), say=lambda _: None)
    lines = []
    result = train(cfg, say=lines.append)
    assert result.resumed_from == 1 and result.epochs_run == 2
    assert any("resuming after epoch 1" in line for line in lines)
    log = log_of(cfg)
    assert [r.get("event") or r["epoch"] for r in log] == ["start", 1, "resume", 2]
    assert log[-1]["resumed"] is True
    again = train(cfg, say=lambda _: None)  # nothing left to do
    assert again.epochs_run == 2 and len([r for r in log_of(cfg) if "epoch" in r]) == 2
    lines = []
    fresh = train(replace(cfg, epochs=1, lr=1e-3), say=lines.append)
    assert fresh.resumed_from == 0 and fresh.epochs_run == 1
    assert any("starting over" in line and "lr" in line for line in lines)
    assert any(r.get("event") == "start_over" for r in log_of(cfg))


def test_missing_shards_name_the_extract_command(tmp_path, fakes):
    del fakes.frames["t2_right"]
    with pytest.raises(TrainError) as err:
        train(config(tmp_path), say=lambda _: None)
    assert "t2_right" in str(err.value)
    assert f"lwaffect extract --input {tmp_path / 'data'} --cache {tmp_path / 'cache'} --split train" in str(
        err.value
    )
    lines = []
    result = train(config(tmp_path, allow_missing=True, epochs=1), say=lines.append)
    assert result.epochs_run == 1 and any("without 1 subjects" in line for line in lines)


def test_au_run_stores_tuned_thresholds_and_the_averaged_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(train_job, "open_cache", lambda location: MapsCache(FRAMES))
    monkeypatch.setattr(train_job, "load_catalogue", lambda root, **kw: fake_catalogue(task="au"))
    result = train(config(tmp_path, task="au", ema=0.5), say=lambda _: None)
    model, meta = load_checkpoint(result.checkpoint)
    assert len(meta["thresholds"]) == 12 and all(0 <= t <= 1 for t in meta["thresholds"])
    # both figures: the two-fold one picks the epoch, the one tuned on all validation frames beside it
    epoch = [r for r in log_of(config(tmp_path)) if "epoch" in r][0]
    assert meta["metric"]["value"] == epoch["metric"] == result.best_metric
    assert meta["metric_tuned"]["value"] == epoch["tuned"]
    assert meta["no_face"] == "hold" and len(epoch["tuned_parts"]) == 12
    last = torch.load(tmp_path / "out" / "last.pt", weights_only=True)
    saved, head = model.state_dict()["head.linear.weight"], "head.linear.weight"
    assert torch.equal(saved, last["ema"][head]) and not torch.equal(saved, last["model"][head])


def test_clip_task_trains_on_one_window_per_clip(tmp_path, monkeypatch):
    monkeypatch.setattr(train_job, "open_cache", lambda location: MapsCache(FRAMES))
    monkeypatch.setattr(train_job, "load_catalogue", lambda root, **kw: fake_catalogue(task="emi"))
    result = train(config(tmp_path, task="emi", seq_len=8, bf16=True), say=lambda _: None)
    assert result.history[0]["frames"] == 2  # the two validation clips
    _, meta = load_checkpoint(result.checkpoint, expect_task="emi")
    assert meta["thresholds"] is None and meta["seq_len"] == 8


def test_cli_passes_flags_and_reports_errors(tmp_path, monkeypatch):
    seen = {}

    def fake_train(cfg, say):
        seen["cfg"] = cfg
        best = cfg.output / "best.safetensors"
        return train_job.TrainResult(
            best_metric=0.5, checkpoint=best, epochs_run=3, wall_time_s=1.0, best_epoch=2
        )

    monkeypatch.setattr(train_job, "train", fake_train)
    args = ["train", "--task", "au", "--input", str(tmp_path), "--cache", "C", "--output", str(tmp_path),
            "--config", "tam_s2", "--epochs", "3", "--seq-len", "16", "--stride", "8", "--lr", "0.01",
            "--batch-size", "2", "--device", "cpu", "--seed", "7", "--trainable-blocks", "3",
            "--input-size", "112", "--backbone-bn", "frozen"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert (cfg.trainable_blocks, cfg.input_size, cfg.backbone_bn) == (3, 112, "frozen")
    assert (cfg.task, cfg.config, cfg.epochs, cfg.seq_len, cfg.stride, cfg.lr, cfg.batch_size, cfg.seed) == (
        "au", "tam_s2", 3, 16, 8, 0.01, 2, 7)  # fmt: skip
    assert "0.5000" in result.output

    def failing(cfg, say):
        raise TrainError("run `lwaffect extract --input X --cache C --split train` first")

    monkeypatch.setattr(train_job, "train", failing)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "lwaffect extract" in result.output


@pytest.fixture(scope="module")
def learn_cache(synth_affwild2, tmp_path_factory):
    """The train and validation subjects of the default synthetic set, extracted with a random-init backbone."""
    from jobs.learnability import make_cache

    work = tmp_path_factory.mktemp("learn")
    make_cache(synth_affwild2, work / "cache", say=lambda _: None)
    return SimpleNamespace(root=synth_affwild2, cache=str(work / "cache"), work=work)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_learns_valence_and_arousal_from_synthetic_videos(learn_cache):
    """Random-init backbone, tam_s1, a few epochs: clearly above zero and above time-shifted labels."""
    from jobs.learnability import train_task

    work = learn_cache.work
    cfg = TrainConfig(task="va", input=learn_cache.root, cache=learn_cache.cache, output=work / "va", epochs=8,
                      patience=8, batch_size=4, lr=1e-3, threads=1, log_every=0)  # fmt: skip
    learned = train_task(cfg, shuffled=False, say=lambda _: None)
    shifted = train_task(replace(cfg, output=work / "va-shifted"), shuffled=True, say=lambda _: None)
    assert learned["metric"] > 0.3
    assert learned["metric"] > shifted["metric"] + 0.2


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
    """Two timm state dicts of the backbone saved as files: `a` and `b` differ in every weight."""
    import timm

    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        files["ab"[seed - 1]] = folder / f"{'ab'[seed - 1]}.pth"
        torch.save(
            timm.create_model("mobilenetv4_conv_small", num_classes=8).state_dict(), files["ab"[seed - 1]]
        )
    return SimpleNamespace(**files)


def weights_spec(fakes, path):
    from model.backbone import BackboneConfig, build_backbone

    backbone = build_backbone(BackboneConfig(weights=str(path)))
    return {**fakes.spec, "weights": str(path), "weights_hash": backbone.weights_hash}


def test_the_tail_is_trained_from_the_weights_file_the_cache_was_made_with(tmp_path, fakes, weights_files):
    from model.backbone import BackboneConfig, build_backbone

    fakes.spec = weights_spec(fakes, weights_files.a)
    cfg = config(tmp_path)
    data = train_job.prepare(cfg, lambda line: None)
    trainer = train_job.Trainer(cfg, data, torch.device("cpu"), lambda line: None)
    want = build_backbone(BackboneConfig(weights=str(weights_files.a))).tail.state_dict()
    got = trainer.model.tail.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, msg=key)
    assert trainer.model.backbone_spec["weights_hash"] == fakes.spec["weights_hash"]


def test_a_cache_made_from_a_weights_file_that_is_gone_names_the_flag(tmp_path, fakes, weights_files):
    fakes.spec = {**weights_spec(fakes, weights_files.a), "weights": str(tmp_path / "moved.pth")}
    with pytest.raises(TrainError, match=r"moved\.pth.*--backbone-weights FILE"):
        train(config(tmp_path), say=lambda line: None)


def test_other_backbone_weights_than_the_cache_are_refused(tmp_path, fakes, weights_files):
    fakes.spec = weights_spec(fakes, weights_files.a)
    with pytest.raises(TrainError, match=r"does not fit the feature cache.*weights_hash"):
        train(config(tmp_path, backbone_weights=str(weights_files.b)), say=lambda line: None)


def test_another_n_or_input_size_than_the_cache_is_refused_naming_both(tmp_path):
    from jobs.train.trainer import check_cut

    spec = {"trainable_blocks": 2, "input_size": 224}
    cfg = TrainConfig(task="va", input=tmp_path, cache="C", output=tmp_path)
    check_cut(cfg, spec)  # not given: the cache's
    check_cut(replace(cfg, trainable_blocks=2, input_size=224), spec)
    with pytest.raises(
        TrainError, match="made with --trainable-blocks 2, this run asks for --trainable-blocks 3"
    ):
        check_cut(replace(cfg, trainable_blocks=3), spec)
    with pytest.raises(TrainError, match="made with --input-size 224, this run asks for --input-size 112"):
        check_cut(replace(cfg, input_size=112), {})  # a cache made before N was recorded: 2 and 224
