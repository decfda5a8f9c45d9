"""Feature cache: schema, self-describing shards, atomic writes, resume, spec checks, URIs, row-range reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.cache.read import CacheError, open_cache, shard_file
from pipeline.cache.schema import (
    decode_subject,
    encode_subject,
    frame_schema,
    frames_table,
    make_spec,
    read_metadata,
)
from pipeline.cache.write import CacheSpecError, CacheWriter, Failure, ShardConfig

SMALL = [[4, 3, 3], [6, 2, 2]]  # small boundary shapes keep these tests fast
FULL = [[64, 28, 28], [96, 14, 14]]


def spec(boundary=SMALL, dtype="float16", min_face=40, weights_hash="random-init"):
    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": weights_hash, "input_size": 224}
    return make_spec(backbone | {"boundary": boundary}, dtype, {"mode": "detect", "min_face_size": min_face})


def rows(n, boundary=SMALL, seed=0, start=0):
    rng = np.random.default_rng(seed)
    face = rng.random(n) > 0.2
    maps = [
        rng.standard_normal((n, *shape)).astype(np.float32) * face[:, None, None, None] for shape in boundary
    ]
    box = rng.uniform(0, 400, (n, 4))
    source = np.where(face, "detected", "none")
    table = frames_table(
        frame_schema(boundary),
        np.arange(start, start + n),
        face,
        box,
        rng.random(n),
        rng.uniform(0, 400, (n, 5, 2)),
        source,
        maps,
    )
    return table, face, maps, box


def test_schema_types_match_the_contract():
    schema = frame_schema(FULL)
    assert schema.field("index").type == pa.int32()
    assert schema.field("face").type == pa.bool_()
    for name in ("x1", "y1", "x2", "y2", "score"):
        assert schema.field(name).type == pa.float32()
    assert schema.field("landmarks").type == pa.list_(pa.field("element", pa.float32(), False), 10)
    assert schema.field("source").type == pa.string()
    assert schema.field("s8").type.list_size == 64 * 28 * 28
    assert schema.field("s16").type.list_size == 96 * 14 * 14
    assert schema.field("s8").type.value_type == pa.float16()


def test_shard_round_trip_is_self_describing(tmp_path):
    s = spec(FULL)
    writer = CacheWriter(str(tmp_path), s, shard=ShardConfig(row_group_size=8))
    table, face, maps, box = rows(20, FULL)
    entry = writer.write_subject("3-25-854x480", "3-25-854x480", table)
    assert (entry.frames, entry.faces) == (20, int(face.sum()))

    meta = read_metadata(pq.read_schema(tmp_path / shard_file("3-25-854x480")))
    assert meta["complete"] is True
    assert (meta["subject"], meta["video"], meta["frames"], meta["faces"]) == (
        "3-25-854x480",
        "3-25-854x480",
        20,
        int(face.sum()),
    )
    for key in ("backbone", "weights_hash", "input_size", "boundary", "dtype", "faces", "version"):
        assert meta["spec"][key] == s[key], key

    cache = open_cache(str(tmp_path))
    assert cache.subjects() == ["3-25-854x480"]
    assert cache.num_frames("3-25-854x480") == 20
    got = cache.read("3-25-854x480")
    assert got.index.tolist() == list(range(20))
    assert got.face.tolist() == face.tolist()
    assert got.maps[0].shape == (20, 64, 28, 28) and got.maps[0].dtype == np.float16
    assert got.maps[1].shape == (20, 96, 14, 14)
    np.testing.assert_array_equal(got.maps[1], maps[1].astype(np.float16))
    np.testing.assert_allclose(got.box, box.astype(np.float32))
    assert set(got.source[~got.face]) == {"none"}
    assert cache.spec == s


def test_read_row_range_reads_only_needed_row_groups(tmp_path):
    writer = CacheWriter(str(tmp_path), spec(), shard=ShardConfig(row_group_size=16))
    table, face, maps, _ = rows(100)
    writer.write_subject("v", "v", table)
    cache = open_cache(str(tmp_path))
    handle = cache._file("v")
    assert [handle.metadata.row_group(g).num_rows for g in range(handle.metadata.num_row_groups)] == [
        16
    ] * 6 + [4]
    seen = []
    original = handle.read_row_groups
    handle.read_row_groups = lambda groups, **kw: seen.append(list(groups)) or original(groups, **kw)

    got = cache.read("v", 20, 40)
    assert seen == [[1, 2]]
    assert got.index.tolist() == list(range(20, 40))
    np.testing.assert_array_equal(got.maps[0], maps[0][20:40].astype(np.float16))
    assert got.face.tolist() == face[20:40].tolist()

    assert cache.read("v", 95).index.tolist() == list(range(95, 100))
    assert cache.read("v", 10, 10).index.size == 0
    assert cache.read("v", 0, 5, maps=False).maps == ()


def test_subject_names_with_slashes_are_encoded(tmp_path):
    name = "p12/Visite_1/p12_Question_3_2023-04-01_Video.mp4"
    encoded = encode_subject(name)
    assert "/" not in encoded and decode_subject(encoded) == name
    assert decode_subject(encode_subject(".hidden %x")) == ".hidden %x"
    assert not encode_subject(".hidden").startswith(".")
    writer = CacheWriter(str(tmp_path), spec())
    writer.write_subject(name, "p12_Question_3", rows(5)[0])
    cache = open_cache(str(tmp_path))
    assert cache.subjects() == [name]
    assert cache.read(name).index.tolist() == [0, 1, 2, 3, 4]


def test_failed_assembly_leaves_no_readable_shard(tmp_path, monkeypatch):
    writer = CacheWriter(str(tmp_path), spec(), shard=ShardConfig(row_group_size=4))
    run = writer.new_run()
    parts = writer.part_writer(run)
    table = rows(10)[0]
    parts.write("v", "v", table.slice(0, 5))
    parts.write("v", "v", table.slice(5, 5))
    flush = CacheWriter._flush
    calls = []

    def crash_after_first_row_group(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full")
        return flush(self, *args, **kwargs)

    monkeypatch.setattr(CacheWriter, "_flush", crash_after_first_row_group)
    with pytest.raises(OSError, match="disk full"):
        writer.assemble(run, "v", "v", 10)
    assert not (tmp_path / shard_file("v")).exists()
    assert list((tmp_path / "shards").iterdir()) == []  # temporary file removed
    assert open_cache(str(tmp_path)).subjects() == []
    monkeypatch.undo()
    assert writer.assemble(run, "v", "v", 10).frames == 10  # the parts are still there to retry


def test_partial_and_foreign_files_are_never_complete(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    table = rows(10)[0]
    writer.write_subject("good", "good", table)
    shards = tmp_path / "shards"
    # a half-written temporary file and a truncated file under a final name
    (shards / ".tmp-0123-bad.parquet").write_bytes(b"PAR1" + b"\0" * 100)
    data = (shards / "good.parquet").read_bytes()
    (shards / "cut.parquet").write_bytes(data[: len(data) // 2])
    # a whole file without the complete flag (a part file copied into place)
    part = table.replace_schema_metadata({b"lwaffect": json.dumps({"complete": False}).encode()})
    pq.write_table(part, shards / "part.parquet")
    assert open_cache(str(tmp_path)).subjects() == ["good"]

    again = CacheWriter(str(tmp_path), spec())
    assert set(again.entries) == {"good"}
    assert not (shards / ".tmp-0123-bad.parquet").exists()


def test_rerun_skips_complete_shards_and_rebuilds_a_lost_manifest(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    writer.write_subject("a", "a", rows(10)[0])
    writer.write_subject("b", "b", rows(7)[0])
    (tmp_path / "manifest.parquet").unlink()
    again = CacheWriter(str(tmp_path), spec())
    assert again.is_complete("a") and again.is_complete("b") and not again.is_complete("c")
    manifest = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    assert [(r["subject"], r["frames"]) for r in manifest] == [("a", 10), ("b", 7)]
    assert all(r["bytes"] == (tmp_path / r["file"]).stat().st_size for r in manifest)


def test_other_settings_are_refused_with_the_differences_named(tmp_path):
    CacheWriter(str(tmp_path), spec()).write_subject("a", "a", rows(5)[0])
    with pytest.raises(CacheSpecError) as err:
        CacheWriter(str(tmp_path), spec(min_face=20, weights_hash="sha256:abc"))
    message = str(err.value)
    assert "faces.min_face_size: 40 -> 20" in message
    assert "weights_hash: 'random-init' -> 'sha256:abc'" in message
    assert "--rebuild" in message
    assert open_cache(str(tmp_path)).subjects() == ["a"]  # nothing touched

    rebuilt = CacheWriter(str(tmp_path), spec(min_face=20), rebuild=True)
    assert rebuilt.entries == {}
    cache = open_cache(str(tmp_path))
    assert cache.subjects() == [] and cache.spec["faces"]["min_face_size"] == 20


def test_uri_location(tmp_path):
    uri = f"file://{tmp_path}/cache"
    writer = CacheWriter(uri, spec())
    table, _, maps, _ = rows(12)
    writer.write_subject("x_left", "x", table)
    assert (tmp_path / "cache" / "shards" / "x_left.parquet").is_file()
    cache = open_cache(uri)
    assert cache.video("x_left") == "x"
    np.testing.assert_array_equal(cache.read("x_left", 3, 6).maps[1], maps[1][3:6].astype(np.float16))
    # a pickled cache reopens itself (DataLoader workers)
    import pickle

    assert pickle.loads(pickle.dumps(cache)).read("x_left", 0, 2).index.tolist() == [0, 1]


def test_parts_must_cover_every_frame(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    run = writer.new_run()
    parts = writer.part_writer(run)
    table = rows(30)[0]
    parts.write("v", "v", table.slice(0, 10))
    parts.write("v", "v", table.slice(20, 10))
    with pytest.raises(CacheError, match=r"do not cover frames \[10, 20\)"):
        writer.assemble(run, "v", "v", 30)
    parts.write("v", "v", table.slice(10, 10))
    with pytest.raises(CacheError, match="cover 30 of 31 frames"):
        writer.assemble(run, "v", "v", 31)
    entry = writer.assemble(run, "v", "v", 30)
    assert entry.frames == 30
    assert not Path(parts.part_dir("v")).exists()


def test_failures_table_keeps_unattempted_and_drops_cached(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    writer.write_failures(
        [Failure("a", "a", "decode", "empty file"), Failure("b", "b", "faces", "no face")], ["a", "b"]
    )
    writer.write_subject("b", "b", rows(3)[0])
    table = writer.write_failures([Failure("c", "c", "decode", "truncated")], ["b", "c"])
    assert sorted(table["subject"].to_pylist()) == ["a", "c"]
    assert open_cache(str(tmp_path)).failures().num_rows == 2


def test_missing_cache_and_subject_errors(tmp_path):
    with pytest.raises(CacheError, match="cache.json missing"):
        open_cache(str(tmp_path / "nothing"))
    CacheWriter(str(tmp_path), spec())
    with pytest.raises(CacheError, match="no complete shard"):
        open_cache(str(tmp_path)).read("ghost")


def test_local_and_uri_locations_resolve_to_the_same_files(tmp_path):
    from pipeline.cache.read import resolve_location

    fs, root = resolve_location(f"file://{tmp_path}")
    assert isinstance(fs, pafs.LocalFileSystem) and root == str(tmp_path)
    assert resolve_location(str(tmp_path))[1] == str(tmp_path)
