"""The extraction's Ray Data stages called directly: the face stage's frame buffer and organiser crops, the
backbone stage, and the write stage's imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jobs.extract.config import FaceSettings
from jobs.extract.driver import _mismatch
from jobs.extract.rows import END, FAIL, FRAME
from jobs.extract.stages.backbone import BackboneStage, check_spec
from jobs.extract.stages.face import FaceStage, FrameBuffer
from model.backbone import BackboneConfig
from pipeline.cache.spec import SpecMismatch, make_spec
from pipeline.faces.align import AlignConfig, align_faces
from pipeline.features import FeatureConfig


def test_frame_buffer_keeps_only_what_is_still_needed():
    class Chunk:
        def __init__(self, start, n):
            self.start, self.stop = start, start + n
            self.frames = np.zeros((n, 2, 2, 3), np.uint8)

    buffer = FrameBuffer()
    buffer.add(Chunk(0, 4))
    buffer.add(Chunk(4, 4))
    buffer.drop_before(4)
    assert [c.start for c in buffer.chunks] == [4]
    with pytest.raises(RuntimeError, match=r"frames \[2\] are no longer buffered"):
        buffer.align(np.array([2]), np.zeros((1, 5, 2), np.float32), np.ones(1, bool), AlignConfig(size=16))


def test_frame_buffer_aligns_across_chunks_like_one_stacked_batch():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)

    class Chunk:
        def __init__(self, start, n):
            self.start, self.stop, self.frames = start, start + n, frames[start : start + n]

    cfg = AlignConfig(size=32)
    template = cfg.template_points().astype(np.float32)  # (5, 2) in a 32 crop
    marks = template[None] * 1.2 + rng.uniform(0, 10, (8, 1, 2)).astype(np.float32)  # (8, 5, 2)
    face = np.array([1, 1, 0, 1, 1, 1, 0, 1], bool)
    buffer = FrameBuffer()
    buffer.add(Chunk(0, 3))
    buffer.add(Chunk(3, 5))
    index = np.arange(1, 7)  # spans both chunks
    got = buffer.align(index, marks[index], face[index], cfg)
    want = align_faces(frames[index], marks[index], face[index], cfg).numpy()
    assert got.shape == (6, 3, 32, 32)
    assert np.array_equal(got, want)
    assert got[0].any() and got[2].any() and not got[1].any() and not got[5].any()  # frames 2, 6: no face


def test_organiser_crops_mode(synth_affwild2, tmp_path):
    from PIL import Image

    video = "1-25-640x360"
    path = synth_affwild2 / "batch1" / f"{video}.mp4"
    folder = tmp_path / "cropped_aligned" / video
    folder.mkdir(parents=True)
    present = [*range(0, 10), *range(20, 30)]  # decode indices with an organiser crop
    for i in present:
        Image.fromarray(np.full((112, 112, 3), 8 * i, np.uint8)).save(folder / f"{i + 1:05d}.jpg", quality=95)
    stage = FaceStage(FaceSettings(mode="cropped-aligned", crops_root=str(tmp_path / "cropped_aligned")))
    rows = list(stage.video(video, path, [(video, "main")]))
    frames = [r for r in rows if r["kind"][0] == FRAME]
    face = np.concatenate([r["face"] for r in frames])
    crops = np.concatenate([r["crops"] for r in frames])
    assert np.concatenate([r["index"] for r in frames]).tolist() == list(range(len(face)))
    assert np.flatnonzero(face).tolist() == present
    assert crops.shape[1:] == (3, 224, 224) and not crops[~face].any()
    assert abs(float(crops[5].mean()) - 40) < 3  # resized 112 -> 224, values kept
    assert rows[-1]["kind"][0] == END and rows[-1]["frames"][0] == len(face) == 75

    missing = list(stage.video(video, path, [("nobody", "main")]))
    assert missing[-1]["kind"][0] == FAIL and "no organiser crop in 75 frames" in missing[-1]["reason"][0]


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).integers(0, 256, (3, 3, 224, 224), dtype=np.uint8)  # (n, 3, S, S)


def test_backbone_stage_adds_maps_and_drops_crops(crops):
    stage = BackboneStage(BackboneConfig(), FeatureConfig(autocast="off"), threads=1)
    batch = {"crops": crops[:3], "face": np.array([True, False, True]), "index": np.arange(3)}
    out = stage(batch)
    assert "crops" not in out
    assert out["s8"].shape == (3, 64, 28, 28) and out["s16"].dtype == np.float16
    assert out["index"].tolist() == [0, 1, 2]
    assert not out["s8"][1].any() and out["s8"][0].any()
    assert out["t_backbone"].shape == (3,) and (out["t_backbone"] > 0).all()
    # its frozen part runs with the BatchNorms folded into the convolutions (model.fold)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in stage.backbone.frozen.modules())


def test_the_backbone_stage_refuses_a_backbone_its_cache_spec_does_not_describe(crops):
    config = BackboneConfig()
    built = BackboneStage(config).backbone.spec()
    spec = make_spec(built, "float16", {"mode": "detect"}, weights=None)
    stage = BackboneStage(config, FeatureConfig(autocast="off"), expect=spec)  # its own spec: accepted
    assert stage({"crops": crops[:1], "face": np.ones(1, bool)})["s8"].any()
    with pytest.raises(SpecMismatch, match=r"this machine .*weights_hash: 'random-init' vs 'abc'"):
        BackboneStage(config, expect=spec | {"weights_hash": "abc"})
    with pytest.raises(SpecMismatch, match=r"cached maps' shapes|boundary"):
        BackboneStage(config, expect=spec | {"boundary": [[1, 2, 3], [4, 5, 6]]})
    other = spec | {"normalization": {"mean": [0.5] * 3, "std": [0.5] * 3, "source": "file"}}
    expected = r"weights file /data/w.safetensors .*\(normalization .*; the value on this machine first"
    with pytest.raises(SpecMismatch, match=expected):
        check_spec(built, other, "/data/w.safetensors")


def test_the_driver_finds_a_workers_spec_mismatch_in_the_ray_error_around_it():
    # a worker that fails in its constructor reaches the driver as text (Ray's ActorDiedError)
    said = "the backbone read on node 127.0.0.2 does not make the maps (weights_hash: 'a' vs 'b')"
    trace = f"Traceback ...\n  raise SpecMismatch(\npipeline.cache.spec.SpecMismatch: {said}\n"
    died = RuntimeError(f"The actor died because of an error raised in its creation task, {trace}")
    found = _mismatch(died)
    assert isinstance(found, SpecMismatch) and str(found) == said
    wrapped = RuntimeError("Ray Data failed")
    wrapped.__cause__ = SpecMismatch(said)
    assert str(_mismatch(wrapped)) == said
    assert _mismatch(RuntimeError("The actor died: out of memory")) is None


def test_random_init_backbone_is_the_same_in_every_worker(crops):
    # workers build their own backbone: without weights it must still be the same one everywhere
    torch.manual_seed(1)
    first = BackboneStage(BackboneConfig(), FeatureConfig(autocast="off"))
    torch.manual_seed(2)
    second = BackboneStage(BackboneConfig(), FeatureConfig(autocast="off"))
    a = first({"crops": crops[:2], "face": np.ones(2, bool)})
    b = second({"crops": crops[:2], "face": np.ones(2, bool)})
    np.testing.assert_array_equal(a["s16"], b["s16"])


def test_the_write_stage_imports_neither_torch_nor_the_detector():
    # its workers stay small: only the face and backbone workers load torch
    code = "import sys, jobs.extract.stages.write; print(sorted({m.split('.')[0] for m in sys.modules}))"
    repo = Path(__file__).parents[3]
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert "'jobs'" in loaded.stdout
    assert "'torch'" not in loaded.stdout and "'facenet_pytorch'" not in loaded.stdout


WORKERS = """
import sys
import numpy as np
from pathlib import Path
from jobs.extract.config import ExtractConfig
from jobs.extract.rows import FRAME
from jobs.extract.stages.deferred import BackboneWorker, FaceWorker
cfg = ExtractConfig(input=".", cache="unused")
face = FaceWorker(settings=cfg.faces, threads=1)
backbone = BackboneWorker(backbone=cfg.backbone, cfg=cfg.features, threads=1)
video = sys.argv[1]
batch = {"video": np.array([Path(video).stem]), "path": np.array([video]),
         "subjects": np.array([f'[["{Path(video).stem}", "main"]]'])}
rows = [r for r in face(batch) if r["kind"][0] == FRAME]
maps = [backbone(r) for r in rows]
print(sum(int(r["face"].sum()) for r in rows), sum(len(m["s8"]) for m in maps), "torch._dynamo" in sys.modules)
"""


def test_the_face_and_backbone_workers_run_a_video_without_importing_the_compiler(synth_affwild2):
    # `model.lazy_dynamo`: each worker saves about 1.5 s of CPU at start-up, while the others start
    video = synth_affwild2 / "batch1" / "1-25-640x360.mp4"
    repo = Path(__file__).parents[3]
    done = subprocess.run([sys.executable, "-c", WORKERS, str(video)], cwd=repo, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    faces, mapped, dynamo = done.stdout.split()
    assert int(faces) > 60 and int(mapped) == 75  # every frame went through both stages, most with a face
    assert dynamo == "False"
