"""The row protocol without Ray: stage rows through the write stage straight into shards, and the driver's
manifest, failures and stage times from its summary rows; a new cache whose spec the backbone workers
describe."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest

from jobs.extract.driver import ExtractReport, Progress
from jobs.extract.rows import END, FAIL, FRAME, SPEC_COLUMN, blank_rows, marker, summaries
from jobs.extract.stages.write import WriteStage
from pipeline.cache.layout import SPEC_FILE
from pipeline.cache.read import open_cache
from pipeline.cache.shard import ShardConfig
from pipeline.cache.spec import SpecMismatch, make_spec
from pipeline.cache.write import CacheWriter
from pipeline.io import is_temporary

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


def end_row(subject, video, kind=END, frames=0, stage="", reason=""):
    row = marker(subject, video, kind, 8, frames=frames, stage=stage, reason=reason)
    row.pop("crops")
    row.update(s8=np.zeros((1, *SMALL[0]), np.float16), s16=np.zeros((1, *SMALL[1]), np.float16))
    row["t_backbone"] = np.zeros(1)
    return row


def concat(*batches):
    keys = batches[0].keys()
    return {k: np.concatenate([b[k] for b in batches]) for k in keys}


def shard_names(root):
    return sorted(p.name for p in (root / "shards").iterdir())


def test_write_stage_streams_rows_into_shards_and_closes_them_once_complete(tmp_path):
    writer = CacheWriter(str(tmp_path), spec(), shard=ShardConfig(row_group_size=4))
    stage = WriteStage(writer.opener())
    out = stage(
        concat(
            frame_rows("a", "v", [3, 4, 5], [1, 1, 0]),
            frame_rows("b", "v", [0, 1, 2, 3, 4], [1, 1, 1, 1, 1]),
            frame_rows("a", "v", [0, 1, 2], [1, 0, 1]),  # out of order: joined with 3..5 into one run
            end_row("a", "v", frames=8),  # before a's last frames
        )
    )
    got = list(summaries(out))
    assert [(s.kind, s.subject, s.start, s.stop) for s in got] == [(FRAME, "a", 0, 6), (FRAME, "b", 0, 5)]
    assert all(s.times["t_write"] > 0 for s in got)
    names = shard_names(tmp_path)
    assert len(names) == 2 and all(is_temporary(n) for n in names)  # a row group of each, in the making
    assert open_cache(str(tmp_path)).subjects() == []

    got = list(summaries(stage(frame_rows("a", "v", [6, 7], [1, 1]))))
    assert [(s.kind, s.subject) for s in got] == [(FRAME, "a"), (END, "a")]
    (end,) = [s for s in got if s.kind == END]
    assert (end.frames, end.faces) == (8, 6) and end.bytes == (
        tmp_path / "shards" / "a.parquet"
    ).stat().st_size
    cache = open_cache(str(tmp_path))
    assert cache.subjects() == ["a"]  # readable from its own footer before the manifest lists it
    assert cache.read("a").maps[0][:, 0, 0, 0].tolist() == list(range(8))

    got = list(summaries(stage(end_row("b", "v", FAIL, stage="faces", reason="v.mp4: no face"))))
    assert [(s.kind, s.subject, s.stage) for s in got] == [(FAIL, "b", "faces")]
    assert shard_names(tmp_path) == ["a.parquet"]  # b's temporary file is gone
    # rows of a closed or failed subject are counted for progress but not written
    got = list(summaries(stage(concat(frame_rows("b", "v", [5], [1]), end_row("b", "v", frames=6)))))
    assert [(s.kind, s.subject) for s in got] == [(FRAME, "b")]
    assert shard_names(tmp_path) == ["a.parquet"]


def test_a_write_error_fails_only_that_subject(tmp_path):
    writer = CacheWriter(str(tmp_path), spec(), shard=ShardConfig(row_group_size=4))
    stage = WriteStage(writer.opener())
    stage(frame_rows("a", "v", [0, 1, 2, 3, 4], [1] * 5))
    got = list(summaries(stage(concat(frame_rows("a", "v", [2, 3], [1, 1]), frame_rows("c", "w", [0], [1])))))
    fail = [s for s in got if s.kind == FAIL]
    assert [(s.subject, s.stage) for s in fail] == [("a", "write")]
    assert "a.parquet" in fail[0].reason and "came twice" in fail[0].reason
    nothing = stage(end_row("a", "v", frames=5))  # already failed: nothing more, in typed empty columns
    assert nothing["kind"].tolist() == [] and nothing["subject"].dtype.kind == "U"
    assert [s.kind for s in summaries(stage(end_row("c", "w", frames=1)))] == [END]
    assert shard_names(tmp_path) == ["c.parquet"]


def test_progress_lists_closed_shards_and_records_failures(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    stage = WriteStage(writer.opener())
    items = [{"video": "v", "path": "v.mp4", "subjects": json.dumps([["a", "left"], ["b", "right"]])}]
    lines = []
    report = ExtractReport(cache=str(tmp_path))
    progress = Progress(writer, items, report, lines.append)
    progress.update(stage(frame_rows("a", "v", [0, 1, 2], [1, 1, 1])))
    progress.update(stage(frame_rows("b", "v", [0, 1], [1, 1])))
    progress.update(stage(end_row("a", "v", frames=5)))  # 3 of 5 frames so far: not yet
    assert report.cached == []
    progress.update(stage(frame_rows("a", "v", [3, 4], [1, 0])))
    progress.update(stage(end_row("b", "v", FAIL, stage="faces", reason="v.mp4: no face found in 2 frames")))
    progress.finish()
    assert report.cached == ["a"] and report.rows == 5
    assert [(f.subject, f.stage) for f in report.failures] == [("b", "faces")]
    manifest = open_cache(str(tmp_path)).manifest().to_pylist()
    assert [(r["subject"], r["frames"], r["faces"]) for r in manifest] == [("a", 5, 4)]
    assert manifest[0]["bytes"] == (tmp_path / "shards" / "a.parquet").stat().st_size
    assert shard_names(tmp_path) == ["a.parquet"]
    assert any("v done" in line for line in lines)
    assert report.stages["write"].frames == 7 and report.stages["decode"].frames == 3.5
    assert report.stages["write"].seconds > 0


def test_progress_fails_subjects_without_a_result(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    items = [{"video": "v", "path": "v.mp4", "subjects": json.dumps([["v", "main"]])}]
    report = ExtractReport(cache=str(tmp_path))
    progress = Progress(writer, items, report, lambda line: None)
    progress.update(WriteStage(writer.opener())(frame_rows("v", "v", [0, 1], [1, 1])))
    progress.finish()
    assert [(f.subject, f.stage) for f in report.failures] == [("v", "pipeline")]


def described(rows, backbone):
    """`rows` as a backbone worker that describes its backbone sends them (no spec on the driver)."""
    return rows | {
        SPEC_COLUMN: np.full(len(rows["kind"]), json.dumps(backbone, sort_keys=True), dtype=object)
    }


def never_built():
    raise AssertionError("the driver built the spec of a new cache")


def test_a_new_cache_takes_the_spec_the_backbone_workers_describe(tmp_path):
    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": "random-init", "input_size": 224,
                "boundary": SMALL}  # fmt: skip
    writer = CacheWriter(str(tmp_path), never_built)  # a new cache: its spec is not needed yet
    assert writer.spec is None and not (tmp_path / SPEC_FILE).exists()
    stage = WriteStage(
        writer.opener(), describe=partial(make_spec, dtype="float16", faces={"mode": "detect"})
    )
    items = [{"video": "v", "path": "v.mp4", "subjects": json.dumps([["a", "main"]])}]
    report = ExtractReport(cache=str(tmp_path))
    adopted = []

    def adopt(described_backbone):
        adopted.append(described_backbone)
        writer.adopt(make_spec(described_backbone, "float16", {"mode": "detect"}))

    progress = Progress(writer, items, report, lambda line: None, adopt=adopt)
    progress.update(stage(described(frame_rows("a", "v", [0, 1, 2], [1, 1, 0]), backbone)))
    # written into the cache before any shard closes, as the write stage made it
    assert json.loads((tmp_path / SPEC_FILE).read_text()) == spec()
    assert writer.spec is None and adopted == []  # the driver takes it with the first complete shard
    progress.update(stage(described(end_row("a", "v", frames=3), backbone)))
    assert adopted == [backbone] and writer.spec == spec()
    progress.finish()
    assert report.cached == ["a"]
    cache = open_cache(str(tmp_path))
    assert cache.subjects() == ["a"] and cache.manifest()["spec_hash"].to_pylist() == [cache.spec_hash]

    # another worker's backbone that makes the same maps is welcome; one that makes others stops the run
    same = backbone | {"tail_output": [9, 9, 9]}
    stage(described(frame_rows("b", "v", [0], [1]), same))
    with pytest.raises(SpecMismatch, match=r"backbone workers do not all make .*weights_hash: 'other'"):
        stage(described(frame_rows("b", "v", [1], [1]), backbone | {"weights_hash": "other"}))


def test_a_new_cache_that_got_no_shard_gets_its_spec_at_the_end(tmp_path):
    nothing = CacheWriter(str(tmp_path / "none"), spec)
    nothing.settle()  # no shard was opened: the driver makes the spec
    assert (
        open_cache(str(tmp_path / "none")).spec == spec()
        and nothing.spec_hash == open_cache(str(tmp_path / "none")).spec_hash
    )
    failed = CacheWriter(str(tmp_path / "failed"), never_built)
    stage = WriteStage(
        failed.opener(), describe=partial(make_spec, dtype="float16", faces={"mode": "detect"})
    )
    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": "random-init", "input_size": 224,
                "boundary": SMALL}  # fmt: skip
    stage(described(frame_rows("a", "v", [0], [1]), backbone))
    stage(described(end_row("a", "v", FAIL, stage="faces", reason="v.mp4: lost"), backbone))
    failed.settle()  # the spec the write stage wrote, not built again
    assert failed.spec == spec()
