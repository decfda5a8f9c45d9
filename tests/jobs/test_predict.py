"""`lwaffect predict`: window averaging, filling, thresholds and the Parquet schema of every task.

The core (`predict_subjects`) runs on an in-memory cache with tiny models whose outputs are known; the
library call and the command run on a small real cache written with the cache writer and a randomly
initialised checkpoint. Prediction, validation during training and the bench share one `Predictor`.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import jobs.bench.model as bench_model
from jobs.cli import app
from jobs.predict import PredictConfig, PredictError, empty_table, output_path, predict, predict_subjects
from model.tasks import AU_NAMES, EMI_NAMES, EXPR_NAMES, TASKS
from pipeline.temporal.predictor import Predictor
from pipeline.temporal.validate import pooled_frames, validate
from pipeline.temporal.windows import WindowConfig, WindowDataset, window_loader

SHAPES = ((2, 2, 2), (3, 1, 1))  # tiny stand-ins for the two boundary maps

# the contract's Parquet schema, written out independently of the code under test
FRAME_COLUMNS = {"video": pl.String, "subject": pl.String, "frame": pl.Int32, "face": pl.Boolean,
                 "filled": pl.Boolean, "reason": pl.String}  # fmt: skip
TASK_COLUMNS = {
    "va": {"valence": pl.Float32, "arousal": pl.Float32},
    "au": {**{f"p_{n}": pl.Float32 for n in AU_NAMES}, **{n: pl.Int8 for n in AU_NAMES}},
    "expr": {**{f"p_{n}": pl.Float32 for n in EXPR_NAMES}, "expression": pl.Int8},
    "ah": {"p_ah": pl.Float32, "ah": pl.Int8},
}


def expected_schema(task: str) -> dict:
    if task == "emi":
        return {
            "video": pl.String,
            "subject": pl.String,
            "reason": pl.String,
            **{n: pl.Float32 for n in EMI_NAMES},
        }
    return {**FRAME_COLUMNS, **TASK_COLUMNS[task]}


class FakeCache:
    """In-memory cache: map value of row r of subject s is `values[s][r]`; `face` masks per subject."""

    def __init__(self, values: dict[str, np.ndarray], faces: dict[str, np.ndarray] | None = None):
        self.values = values
        self.faces = faces or {}

    def subjects(self):
        return list(self.values)

    def num_frames(self, subject):
        return len(self.values[subject])

    def video(self, subject):
        return subject.removesuffix("_left").removesuffix("_right")

    def read(self, subject, start=0, stop=None, maps=True):  # maps=False reads the same (they are tiny)
        v = self.values[subject][start:stop]
        maps = tuple(np.broadcast_to(v[:, None, None, None], (len(v), *s)).astype(np.float16) for s in SHAPES)
        face = self.faces.get(subject, np.ones(len(self.values[subject]), bool))[start:stop]
        return SimpleNamespace(index=np.arange(start, start + len(v), dtype=np.int32), face=face, maps=maps)


class PositionEcho(nn.Module):
    """Output k of frame t = map value + k * (position of t in its window): windows differ visibly."""

    def __init__(self, outputs: int):
        super().__init__()
        self.outputs = outputs

    def forward(self, maps):
        value = maps[0][:, :, 0, 0, 0]  # (B, T)
        position = torch.arange(value.shape[1], dtype=value.dtype)  # (T,)
        k = torch.arange(self.outputs, dtype=value.dtype)  # (K,)
        return value[..., None] + position[None, :, None] * k  # (B, T, K)


class Constant(nn.Module):
    """The same head outputs for every frame."""

    def __init__(self, outputs):
        super().__init__()
        self.register_buffer("out", torch.as_tensor(outputs, dtype=torch.float32))

    def forward(self, maps, mask=None):
        b, t = maps[0].shape[:2]
        if mask is not None:  # a clip task's model: one output row per window
            return self.out.expand(b, -1)
        return self.out.expand(b, t, -1)


def averaged_positions(n: int, seq_len: int, stride: int) -> np.ndarray:
    """Mean position of each frame over the windows that hold it (starts every `stride`, last at the end)."""
    starts = sorted(set(range(0, max(n - seq_len, 0) + 1, stride)) | {max(n - seq_len, 0)})
    total, count = np.zeros(n), np.zeros(n)
    for s in starts:
        rows = np.arange(s, min(s + seq_len, n))
        total[rows] += rows - s
        count[rows] += 1
    return total / count


def run_core(task, model, cache, subjects=None, thresholds=0.5, fill="linear", seq_len=8, stride=4):
    th = np.broadcast_to(np.asarray(thresholds, np.float64), (TASKS[task].outputs,))
    predictor = Predictor(model, task, seq_len, stride, tuple(th.tolist()))
    return predict_subjects(predictor, cache, subjects or cache.subjects(), fill)


@pytest.mark.parametrize("n", [5, 8, 21, 30])
def test_overlapping_windows_are_averaged_per_frame(n):
    values = np.linspace(-0.5, 0.5, n).astype(np.float16)
    table = run_core("va", PositionEcho(2), FakeCache({"v": values}), seq_len=8, stride=3)
    mean_position = averaged_positions(n, 8, 3)
    np.testing.assert_allclose(table["valence"].to_numpy(), np.tanh(values.astype(np.float64)), atol=1e-3)
    np.testing.assert_allclose(
        table["arousal"].to_numpy(), np.tanh(values.astype(np.float64) + mean_position), atol=1e-3
    )
    assert table["frame"].to_list() == list(range(1, n + 1))
    assert not table["filled"].any()


def test_frames_without_a_face_are_filled_and_flagged():
    values = np.arange(12, dtype=np.float16) / 20  # tanh is monotonic: interpolated values lie between
    face = np.ones(12, bool)
    face[[0, 1, 5, 6, 11]] = False
    cache = FakeCache({"v": values}, {"v": face})
    linear = run_core("va", PositionEcho(2), cache, fill="linear")
    nearest = run_core("va", PositionEcho(2), cache, fill="nearest")
    v = linear["valence"].to_numpy()
    assert linear["filled"].to_list() == (~face).tolist()
    assert linear["face"].to_list() == face.tolist()
    assert v[0] == v[1] == v[2] and v[11] == v[10]  # ends hold the nearest face frame
    assert v[5] == pytest.approx(v[4] + (v[7] - v[4]) / 3, abs=1e-6)  # interpolated between 4 and 7
    assert v[6] == pytest.approx(v[4] + 2 * (v[7] - v[4]) / 3, abs=1e-6)
    np.testing.assert_allclose(v[face], np.tanh(values[face].astype(np.float64)), atol=1e-6)
    n = nearest["valence"].to_numpy()
    assert n[5] == n[4] and n[6] == n[7]


def test_a_subject_without_any_face_is_filled_with_neutral_values():
    cache = FakeCache({"v": np.full(6, 0.3, np.float16)}, {"v": np.zeros(6, bool)})
    table = run_core("va", PositionEcho(2), cache)
    assert table["filled"].all()
    assert (table["valence"] == 0).all() and (table["arousal"] == 0).all()


@pytest.mark.parametrize("task", ["va", "au", "expr", "ah", "emi"])
def test_schema_matches_the_contract(task):
    cache = FakeCache({"a_left": np.zeros(10, np.float16), "a_right": np.ones(7, np.float16)})
    table = run_core(task, Constant(np.zeros(TASKS[task].outputs)), cache)
    assert dict(table.schema) == expected_schema(task)
    assert dict(empty_table(task).schema) == expected_schema(task)
    assert table["subject"].unique(maintain_order=True).to_list() == ["a_left", "a_right"]
    assert set(table["video"].to_list()) == {"a"}
    assert len(table) == (2 if task == "emi" else 17)


def test_au_decisions_use_the_checkpoint_thresholds():
    logits = np.linspace(-1, 1, 12)  # sigmoid 0.27 .. 0.73
    probs = 1 / (1 + np.exp(-logits))
    thresholds = np.where(np.arange(12) % 2 == 0, 0.2, 0.8)
    cache = FakeCache({"v": np.zeros(4, np.float16)})
    table = run_core("au", Constant(logits), cache, thresholds=thresholds)
    row = table.row(0, named=True)
    assert [row[n] for n in AU_NAMES] == (probs >= thresholds).astype(int).tolist()
    np.testing.assert_allclose([row[f"p_{n}"] for n in AU_NAMES], probs, atol=1e-6)
    default = run_core("au", Constant(logits), cache).row(0, named=True)
    assert [default[n] for n in AU_NAMES] == (probs >= 0.5).astype(int).tolist()


def test_filled_au_frames_are_decided_from_filled_probabilities():
    values = np.array([-3, -3, 0, 1, 3], np.float16)
    face = np.array([True, True, False, True, True])
    table = run_core("ah", PositionEcho(1), FakeCache({"v": values}, {"v": face}), seq_len=2, stride=2)
    p = table["p_ah"].to_numpy()
    assert p[2] == pytest.approx((p[1] + p[3]) / 2, abs=1e-6)
    assert table["ah"].to_list() == (p >= 0.5).astype(int).tolist()


def test_expression_is_the_most_probable_class():
    logits = np.array([0.1, 0.2, 3.0, 0.0, -1.0, 0.5, 0.4, 0.3])
    table = run_core("expr", Constant(logits), FakeCache({"v": np.zeros(3, np.float16)}))
    assert table["expression"].to_list() == [2, 2, 2]
    probs = table.select([f"p_{n}" for n in EXPR_NAMES]).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_subject_order_follows_the_request():
    cache = FakeCache({"b": np.zeros(3, np.float16), "a": np.zeros(2, np.float16)})
    table = run_core("va", PositionEcho(2), cache, subjects=["b", "a"])
    assert table["subject"].to_list() == ["b", "b", "b", "a", "a"]
    assert table["frame"].to_list() == [1, 2, 3, 1, 2]


class Linear(nn.Module):
    """A trainable per-frame head on the first map value: (B, T, ...) -> (B, T, 2)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 2)

    def forward(self, maps):
        return self.linear(maps[0][:, :, :1, 0, 0].float())  # (B, T, 1) -> (B, T, 2)


def test_predict_validation_and_bench_go_through_one_predictor(monkeypatch):
    values = np.linspace(-1, 1, 23).astype(np.float16)
    face = np.ones(23, bool)
    face[[0, 7, 8, 22]] = False
    cache = FakeCache({"v": values, bench_model.SUBJECT: values[:16]}, {"v": face})
    torch.manual_seed(0)
    predictor = Predictor(Linear(), "va", seq_len=8, stride=3)
    calls: list[tuple[str, int, int]] = []
    raw = Predictor.raw

    def spy(self, reader, subject):
        calls.append((subject, self.seq_len, self.stride))
        return raw(self, reader, subject)

    monkeypatch.setattr(Predictor, "raw", spy)
    table = predict_subjects(predictor, cache, ["v"])
    labels = {"v": SimpleNamespace(values=np.zeros((23, 2), np.float32), valid=np.ones(23, bool))}
    pooled, _, mask, _ = pooled_frames(predictor, cache, labels)
    assert validate(predictor, cache, labels).frames == int(mask.sum()) == 23
    assert calls == [("v", 8, 3)] * 3
    # the same per-frame outputs, faceless frames filled alike
    np.testing.assert_array_equal(table.select("valence", "arousal").to_numpy(), pooled)
    assert table["filled"].to_list() == (~face).tolist()

    calls.clear()
    batch = (tuple(torch.from_numpy(m[None, :8].astype(np.float32)) for m in cache.read("v").maps),
             torch.zeros(1, 8, 2), torch.ones(1, 8, dtype=torch.bool))  # fmt: skip
    figures = bench_model._time_model(Linear(), cache, [batch], "cpu", repeats=1, seq_len=8, stride=4)
    assert figures["predict_fps"] > 0 and calls == [(bench_model.SUBJECT, 8, 4)]


class ClipMean(nn.Module):
    """A clip model: the mean first map value over the frames `mask` (B, T) pools, (B, 6)."""

    def forward(self, maps, mask):
        value = maps[0][:, :, 0, 0, 0].float()  # (B, T)
        weights = mask.float()
        return ((value * weights).sum(1) / weights.sum(1))[:, None].repeat(1, 6)


@pytest.mark.parametrize("no_face", ["hold", "zeros"])
def test_an_emi_clip_gets_the_same_value_in_training_validation_and_prediction(no_face):
    values = np.linspace(0.5, 2.0, 12).astype(np.float16)
    face = np.ones(12, bool)
    face[[2, 3, 11]] = False  # faceless frames: zero maps in the cache
    stored = np.where(face, values, 0).astype(np.float16)
    cache = FakeCache({"c": stored}, {"c": face})
    labels = {"c": SimpleNamespace(values=np.full((1, 6), 0.5, np.float32), valid=np.ones(1, bool))}
    ds = WindowDataset(
        cache, labels, "emi", WindowConfig(seq_len=8, stride=8, shuffle=False, no_face=no_face)
    )
    maps, _, mask = next(iter(window_loader(ds, batch_size=1)))
    trained = torch.sigmoid(ClipMean()(maps, mask)).numpy()  # what the loss sees (train_step)
    predictor = Predictor(ClipMean(), "emi", seq_len=8, stride=4, no_face=no_face)
    validated, _, _, _ = pooled_frames(predictor, cache, labels)
    predicted = predict_subjects(predictor, cache, ["c"]).select(EMI_NAMES).to_numpy()
    np.testing.assert_allclose(validated, trained, rtol=1e-6)
    np.testing.assert_allclose(predicted, trained, rtol=1e-6)
    rows = np.round(np.linspace(0, 11, 8)).astype(int)  # the clip's sampled frames
    expected = values[rows][face[rows]].astype(np.float64).mean()  # over the frames with a face only
    np.testing.assert_allclose(trained[0, 0], 1 / (1 + np.exp(-expected)), rtol=1e-3)


# ------------------------------------------------------------------------- library call on a real cache


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """A cache of two subjects in the real shard format (random maps), and a random VA checkpoint."""
    from jobs.train.state import save_checkpoint
    from model.backbone import BackboneConfig, build_backbone
    from model.configs import build_model
    from pipeline.cache.schema import frame_schema, frames_table
    from pipeline.cache.spec import make_spec
    from pipeline.cache.write import CacheWriter

    root = tmp_path_factory.mktemp("predict")
    backbone = build_backbone(BackboneConfig(pretrained=False))
    spec = make_spec(backbone.spec(), "float16", {"detector": "none"})
    writer = CacheWriter(str(root / "cache"), spec)
    schema = frame_schema(spec["boundary"])
    rng = np.random.default_rng(0)
    faces = {}
    for subject, n in (("vid1", 40), ("vid2_left", 9)):
        face = rng.random(n) > 0.3
        face[0] = True
        faces[subject] = face
        maps = [
            rng.normal(size=(n, *s)).astype(np.float16) * face[:, None, None, None] for s in spec["boundary"]
        ]
        table = frames_table(schema, np.arange(n), face, np.zeros((n, 4)), np.ones(n), np.zeros((n, 10)),
                             ["detected" if f else "none" for f in face], maps)  # fmt: skip
        writer.write_subject(subject, subject.removesuffix("_left"), table)
    torch.manual_seed(0)
    checkpoints = {}
    for task in ("va", "au"):
        model = build_model("tam_s1", task, backbone=backbone, num_frames=8)
        checkpoints[task] = root / f"{task}.ckpt"
        meta = {"task": task, "config": "tam_s1", "seq_len": 8, "stride": 4, "cache_spec": spec}
        save_checkpoint(checkpoints[task], model, meta)
    return SimpleNamespace(root=root, cache=str(root / "cache"), faces=faces, checkpoints=checkpoints)


def test_predict_writes_every_cached_frame(real_cache, tmp_path):
    cfg = PredictConfig(
        task="va", cache=real_cache.cache, weights=real_cache.checkpoints["va"], output=tmp_path
    )
    report = predict(cfg, say=lambda line: None)
    assert report.path == output_path(tmp_path, "va") == tmp_path / "predictions" / "va.parquet"
    assert not list(report.path.parent.glob(".*"))  # no temporary file left
    table = pl.read_parquet(report.path)
    assert dict(table.schema) == expected_schema("va")
    assert pq.read_schema(report.path).field("frame").type == "int32"
    for subject, face in real_cache.faces.items():
        rows = table.filter(pl.col("subject") == subject)
        assert rows["frame"].to_list() == list(range(1, len(face) + 1))
        assert rows["filled"].to_list() == (~face).tolist()
    assert report.frames == 49 and report.filled == sum(int((~f).sum()) for f in real_cache.faces.values())
    assert report.subjects == 2 and report.videos == 2
    assert table["valence"].is_between(-1, 1).all()


def test_predict_refuses_a_checkpoint_of_another_task(real_cache, tmp_path):
    cfg = PredictConfig(
        task="va", cache=real_cache.cache, weights=real_cache.checkpoints["au"], output=tmp_path
    )
    with pytest.raises(PredictError, match="au"):
        predict(cfg, say=lambda line: None)
    assert not output_path(tmp_path, "va").exists()


def test_predict_refuses_thresholds_that_do_not_fit_the_task(real_cache, tmp_path):
    from jobs.train.state import save_checkpoint
    from model.checkpoint import load_checkpoint

    model, meta = load_checkpoint(real_cache.checkpoints["au"])
    weights = tmp_path / "three.ckpt"
    save_checkpoint(weights, model, {**meta, "thresholds": [0.1] * 3})
    cfg = PredictConfig(task="au", cache=real_cache.cache, weights=weights, output=tmp_path)
    with pytest.raises(PredictError, match="12"):
        predict(cfg, say=lambda line: None)


def test_predict_command_reports_a_task_mismatch_and_exits_1(real_cache, tmp_path):
    args = ["predict", "--task", "va", "--cache", real_cache.cache, "--weights",
            str(real_cache.checkpoints["au"]), "--output", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "lwaffect predict" in result.output and "au" in result.output


def test_predict_command_writes_predictions_with_a_stride(real_cache, tmp_path):
    args = ["predict", "--task", "au", "--cache", real_cache.cache, "--weights",
            str(real_cache.checkpoints["au"]), "--output", str(tmp_path), "--stride", "2", "--fill", "nearest"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(output_path(tmp_path, "au"))
    assert dict(table.schema) == expected_schema("au")
    assert str(output_path(tmp_path, "au")) in result.output


@pytest.mark.parametrize("task", list(TASKS))
def test_a_failed_video_gets_the_neutral_value_on_every_frame_flagged(task):
    from jobs.predict import neutral_table

    table = neutral_table(task, "v", "v_left", 5)
    assert dict(table.schema) == expected_schema(task)
    spec = TASKS[task]
    assert set(table["reason"].to_list()) == {"failed video"}
    if spec.unit == "clip":
        assert len(table) == 1
        assert table.select(spec.label_columns).row(0) == pytest.approx(spec.neutral)
        return
    assert table["frame"].to_list() == [1, 2, 3, 4, 5]
    assert table["filled"].all() and not table["face"].any()
    assert table.select(spec.label_columns).unique().rows() == [pytest.approx(spec.neutral)]


def test_predict_from_a_crop_cache_runs_the_weights_file_it_was_made_with(tmp_path):
    import timm

    from jobs.predict import crop_maps
    from model.backbone import BackboneConfig, build_backbone
    from pipeline.cache.crops import CropCodec
    from pipeline.cache.spec import make_spec

    files = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        files.append(tmp_path / f"w{seed}.pth")
        torch.save(timm.create_model("mobilenetv4_conv_small", num_classes=8).state_dict(), files[-1])
    made = build_backbone(BackboneConfig(weights=str(files[0]), input_size=112, trainable_blocks=5))
    spec = make_spec(made.spec(), "float16", {"mode": "detect"}, weights=str(tmp_path / "moved.pth"),
                     crops=CropCodec().spec())  # fmt: skip
    cfg = PredictConfig(task="va", cache="C", weights=tmp_path / "ckpt", output=tmp_path)
    with pytest.raises(PredictError, match="moved.pth, which is not there: pass it with --backbone-weights"):
        crop_maps(cfg, spec)
    maker = crop_maps(dataclasses.replace(cfg, backbone_weights=str(files[0])), spec)
    crops = torch.randint(0, 255, (1, 2, 3, 112, 112), dtype=torch.uint8)
    images = (crops[0].float() - maker.mean) / maker.std
    with torch.no_grad():
        torch.testing.assert_close(maker(crops)[0][0], made.frozen(images)[0], atol=1e-2, rtol=1e-2)
    with pytest.raises(PredictError, match=r"w2.pth do not fit the crop cache C.*weights_hash"):
        crop_maps(dataclasses.replace(cfg, backbone_weights=str(files[1])), spec)


def test_predict_and_run_pass_the_backbone_weights_on(tmp_path, monkeypatch):
    import jobs.predict as predict_job
    import jobs.run.driver as run_driver
    from jobs.run.config import RunConfig
    from jobs.run.report import TaskModel

    seen = []

    def fake_predict(cfg, say=None):
        seen.append(cfg)
        raise PredictError("stop here")

    monkeypatch.setattr(predict_job, "predict", fake_predict)
    args = ["predict", "--task", "va", "--cache", "C", "--weights", str(tmp_path / "w"), "--output", str(tmp_path),
            "--backbone-weights", str(tmp_path / "b.pth")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "stop here" in result.output
    assert seen[-1].backbone_weights == str(tmp_path / "b.pth")
    monkeypatch.setattr(run_driver, "predict", fake_predict)
    cfg = RunConfig(
        input=tmp_path, tasks=("va",), train_options=(("backbone_weights", str(tmp_path / "b.pth")),)
    )
    catalogue = SimpleNamespace(subjects_in=lambda task, split: [])
    with pytest.raises(PredictError, match="stop here"):
        run_driver.task_stage(
            cfg, "va", TaskModel("va", tmp_path / "w", "given"), catalogue, [], lambda _: None
        )
    assert seen[-1].backbone_weights == str(tmp_path / "b.pth")


def test_the_model_bench_refuses_a_crop_cache_naming_the_crop_bench(monkeypatch):
    monkeypatch.setattr(bench_model, "open_cache", lambda location: SimpleNamespace(kind="crops"))
    with pytest.raises(ValueError, match=r"C holds crops: .*python -m jobs.bench.crops"):
        bench_model.bench_temporal("C", backbone=None, configs=("tam_s1",), device="cpu", repeats=1)
