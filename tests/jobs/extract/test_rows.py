"""The row protocol without Ray: stage rows through the write stage into part files and summaries, and the
driver's coverage, assembly and failures from those summaries."""

from __future__ import annotations

import json

import numpy as np

from jobs.extract.driver import ExtractReport, Progress
from jobs.extract.rows import END, FAIL, FRAME, blank_rows, marker
from jobs.extract.stages.write import WriteStage
from pipeline.cache.read import open_cache
from pipeline.cache.spec import make_spec
from pipeline.cache.write import CacheWriter

SMALL = [[4, 3, 3], [6, 2, 2]]


def spec():
    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": "random-init", "input_size": 224}
    return make_spec(backbone | {"boundary": SMALL}, "float16", {"mode": "detect"})


def frame_rows(subject, video, index, face, n_maps=SMALL):
    rows = blank_rows(subject, video, FRAME, len(index), 8)
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
