"""Writing the cache: atomic shard assembly, resume, part coverage, the failures table."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cache.layout import shard_file
from pipeline.cache.read import CacheError, open_cache
from pipeline.cache.write import CacheWriter, Failure, ShardConfig
from tests.pipeline.cache.shards import rows, spec


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
