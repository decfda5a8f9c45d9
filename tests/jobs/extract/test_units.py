"""Extraction pieces without Ray: stage sizing, the write stage, driver-side coverage and assembly."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jobs.extract.driver import ExtractReport, Progress
from jobs.extract.runtime import (
    LOOPBACK_VAR,
    UV_HOOK_VAR,
    RuntimeConfig,
    _cluster_mode,
    _loopback_host,
    _loopback_only,
    cluster_address,
    plan_stages,
)
from jobs.extract.stages import FrameBuffer, _rows, marker
from jobs.extract.write import END, FAIL, FRAME, WriteStage
from pipeline.cache.read import open_cache
from pipeline.cache.spec import make_spec
from pipeline.cache.write import CacheWriter
from pipeline.faces.align import AlignConfig, align_faces

SMALL = [[4, 3, 3], [6, 2, 2]]


def spec():
    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": "random-init", "input_size": 224}
    return make_spec(backbone | {"boundary": SMALL}, "float16", {"mode": "detect"})


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 16, 64])
def test_stage_pools_never_reserve_every_cpu(cpus):
    plan = plan_stages(RuntimeConfig(), cpus, 0)
    assert plan.reserved_cpus <= cpus - 0.25 or cpus < 2
    assert plan.reserved_cpus <= cpus
    assert plan.face_actors >= 1 and plan.backbone_actors >= 1 and plan.device == "cpu"
    if cpus >= 16:
        assert plan.face_actors >= cpus // 2  # the face stage is the expensive one: most CPUs go there


def test_two_cores_leave_room_for_every_stage():
    plan = plan_stages(RuntimeConfig(), 2, 0)
    assert (plan.face_actors, plan.face_cpus, plan.backbone_cpus, plan.write_cpus) == (1, 1.0, 0.5, 0.25)
    assert plan.reserved_cpus < 2


def test_gpu_plan_and_refusals():
    plan = plan_stages(RuntimeConfig(), 16, 1)
    assert plan.device == "cuda" and plan.backbone_gpus == 1.0 and plan.face_gpus > 0
    assert plan_stages(RuntimeConfig(use_gpu=False), 16, 1).device == "cpu"
    with pytest.raises(RuntimeError, match="GPU"):
        plan_stages(RuntimeConfig(), 4, 0, device="cuda")
    with pytest.raises(RuntimeError, match="reserve"):
        plan_stages(RuntimeConfig(face_actors=4, face_cpus=1.0), 2, 0)


def test_cluster_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(RuntimeConfig()) is None
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6380")
    assert cluster_address(RuntimeConfig()) == "127.0.0.2:6380"
    assert cluster_address(RuntimeConfig(address="local")) is None
    assert _loopback_host("127.0.0.2:6380") == "127.0.0.2"
    assert _loopback_host("10.0.0.5:6379") is None


def frame_rows(subject, video, index, face, n_maps=SMALL):
    rows = _rows(subject, video, FRAME, len(index), 8)
    rows.pop("crops")
    rows["index"] = np.asarray(index, np.int32)
    rows["face"] = np.asarray(face, bool)
    rows["box"] = np.tile(np.arange(4, dtype=np.float32), (len(index), 1))
    rows["source"] = np.where(rows["face"], "detected", "none").astype(object)
    rows["s8"] = np.ones((len(index), *n_maps[0]), np.float16) * rows["index"][:, None, None, None]
    rows["s16"] = np.ones((len(index), *n_maps[1]), np.float16)
    rows["t_backbone"] = np.full(len(index), 0.01)
    rows["w_video"][:] = 0.5
    return rows


def concat(*batches):
    keys = batches[0].keys()
    return {k: np.concatenate([b[k] for b in batches]) for k in keys}


def test_a_local_ray_stays_on_loopback_without_uv_and_a_cluster_gets_both_back(monkeypatch):
    from ray._private import ray_constants

    for name in (LOOPBACK_VAR, UV_HOOK_VAR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    monkeypatch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", True)
    _loopback_only()
    assert os.environ[LOOPBACK_VAR] == "0" and os.environ[UV_HOOK_VAR] == "0"
    assert not ray_constants.ENABLE_RAY_CLUSTER and not ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV
    _cluster_mode()
    assert LOOPBACK_VAR not in os.environ and UV_HOOK_VAR not in os.environ
    assert ray_constants.ENABLE_RAY_CLUSTER and ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV


def test_blocks_between_stages_hold_about_one_decode_chunk_of_crops():
    from jobs.extract.stages import FaceSettings

    crop_bytes = 3 * FaceSettings().crop_size ** 2  # uint8 (3, S, S) per row
    rows = RuntimeConfig().block_bytes / crop_bytes
    assert FaceSettings().decode.chunk_frames <= rows < 4 * FaceSettings().decode.chunk_frames


def test_write_stage_writes_contiguous_parts_and_passes_markers(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    run = writer.new_run()
    stage = WriteStage(writer.part_writer(run))
    end = marker("a", "v", END, 8, frames=6)
    end.pop("crops")
    end.update(s8=np.zeros((1, *SMALL[0]), np.float16), s16=np.zeros((1, *SMALL[1]), np.float16))
    end["t_backbone"] = np.zeros(1)
    batch = concat(
        frame_rows("a", "v", [3, 4, 5], [1, 1, 0]),
        frame_rows("b", "v", [0, 1], [1, 1]),
        frame_rows("a", "v", [0, 1, 2], [1, 0, 1]),  # out of order: joined with 3..5 into one part
        end,
    )
    out = stage(batch)
    kinds = out["kind"].tolist()
    assert kinds.count(END) == 1 and kinds.count(FRAME) == 2
    spans = sorted(
        (s, a, b)
        for k, s, a, b in zip(kinds, out["subject"], out["start"], out["stop"], strict=True)
        if k == FRAME
    )
    assert spans == [("a", 0, 6), ("b", 0, 2)]
    assert (out["t_write"] > 0).all()
    entry = writer.assemble(run, "a", "v", 6)
    assert (entry.frames, entry.faces) == (6, 4)
    got = open_cache(str(tmp_path)).read("a")
    assert got.index.tolist() == list(range(6))
    assert got.maps[0][:, 0, 0, 0].tolist() == list(range(6))


def test_decoded_chunks_are_bounded_in_bytes_whatever_the_resolution():
    from jobs.extract.stages import FaceSettings

    settings = FaceSettings()
    frames = {
        size: settings.decode_for(*size).chunk_frames for size in ((320, 240), (1280, 720), (1920, 1080))
    }
    assert frames == {(320, 240): 16, (1280, 720): 16, (1920, 1080): 8}
    assert settings.decode_for(7680, 4320).chunk_frames == 1  # one 8K frame is 100 MB: never zero
    for (width, height), n in frames.items():
        assert n * width * height * 3 <= settings.chunk_bytes


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
    template = cfg.template_points().numpy().astype(np.float32)  # (5, 2) in a 32 crop
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


def summary(kind, subject, start=0, stop=0, frames=0, stage="", reason=""):
    row = {
        "kind": kind,
        "subject": subject,
        "video": "v",
        "start": start,
        "stop": stop,
        "faces": stop - start,
    }
    row |= {"frames": frames, "stage": stage, "reason": reason, "nodes": "", "w_video": float(stop - start)}
    row["n_face"] = 1.0
    row |= {f"t_{s}": 0.1 for s in ("decode", "detect", "align", "backbone", "write")}
    return {k: np.array([v]) for k, v in row.items()}


def test_progress_assembles_once_covered_and_discards_failed(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    run = writer.new_run()
    parts = writer.part_writer(run)
    stage = WriteStage(parts)
    items = [{"video": "v", "path": "v.mp4", "subjects": json.dumps([["a", "left"], ["b", "right"]])}]
    lines = []
    report = ExtractReport(cache=str(tmp_path))
    progress = Progress(writer, run, items, report, lines.append)
    for rows in (frame_rows("a", "v", [0, 1, 2], [1, 1, 1]), frame_rows("b", "v", [0, 1], [1, 1])):
        progress.update(stage(rows))
    progress.update(summary(END, "a", frames=5))  # 3 of 5 frames so far: not yet
    progress.pool.shutdown(wait=True)
    assert report.cached == []
    progress.pool = type(progress.pool)(max_workers=1)
    progress.update(stage(frame_rows("a", "v", [3, 4], [1, 0])))
    progress.update(summary(FAIL, "b", stage="faces", reason="v.mp4: no face found in 2 frames"))
    progress.finish()
    assert report.cached == ["a"]
    assert [(f.subject, f.stage) for f in report.failures] == [("b", "faces")]
    assert open_cache(str(tmp_path)).subjects() == ["a"]
    assert not (tmp_path / "parts" / run / "b").exists()
    assert any("v done" in line for line in lines)
    assert report.stages["write"].frames == 7 and report.stages["decode"].frames == 3.5


def test_organiser_crops_mode(synth_affwild2, tmp_path):
    from PIL import Image

    from jobs.extract.stages import FaceSettings, FaceStage

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
