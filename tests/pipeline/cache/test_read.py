"""Reading the cache: self-describing shards, row-range reads, only complete shards listed, errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cache.layout import resolve_location, shard_file
from pipeline.cache.read import CacheError, complete_shards, open_cache
from pipeline.cache.schema import MANIFEST_SCHEMA, read_metadata
from pipeline.cache.write import CacheWriter, ShardConfig
from tests.pipeline.cache.shards import FULL, rows, spec


def test_shard_round_trip_is_self_describing(tmp_path):
    s = spec(FULL)
    writer = CacheWriter(str(tmp_path), s, shard=ShardConfig(row_group_size=8))
    table, face, maps, box = rows(20, FULL)
    entry = writer.write_subject("3-25-854x480", "3-25-854x480", table)
    assert (entry.frames, entry.faces) == (20, int(face.sum()))

    meta = read_metadata(pq.read_metadata(tmp_path / shard_file("3-25-854x480")))
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


def test_missing_cache_and_subject_errors(tmp_path):
    with pytest.raises(CacheError, match="cache.json missing"):
        open_cache(str(tmp_path / "nothing"))
    CacheWriter(str(tmp_path), spec())
    with pytest.raises(CacheError, match="no complete shard"):
        open_cache(str(tmp_path)).read("ghost")


def test_a_manifest_row_counts_only_for_the_shard_it_describes(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    writer.write_subject("a", "a", rows(10)[0])
    writer.write_subject("b", "b", rows(6)[0])
    cached = complete_shards(*resolve_location(str(tmp_path)), writer.spec_hash)
    assert {s: (e.frames, e.file) for s, (e, _) in cached.items()} == {
        "a": (10, shard_file("a")),
        "b": (6, shard_file("b")),
    }
    # a shard replaced behind the manifest's back: the manifest row no longer describes it
    data = (tmp_path / shard_file("a")).read_bytes()
    (tmp_path / shard_file("a")).write_bytes(data[: len(data) // 2])
    manifest = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    for row in manifest:
        row["frames"] = 99 if row["subject"] == "b" else row["frames"]
        row["bytes"] = row["bytes"] + 1 if row["subject"] == "b" else row["bytes"]
    pq.write_table(pa.Table.from_pylist(manifest, schema=MANIFEST_SCHEMA), tmp_path / "manifest.parquet")
    cached = complete_shards(*resolve_location(str(tmp_path)), writer.spec_hash)
    assert {s: e.frames for s, (e, _) in cached.items()} == {"b": 6}  # b from its own footer
    assert open_cache(str(tmp_path)).subjects() == ["b"]
    assert complete_shards(*resolve_location(str(tmp_path)), "another spec") == {}
