"""Writing the cache: shards streamed once (rows in any order, row groups in frame order), never readable
as complete before they are, not even when the writing process is killed; resume; the failures table."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.cache.layout import SPEC_FILE, shard_file
from pipeline.cache.read import CacheError, open_cache
from pipeline.cache.schema import read_metadata
from pipeline.cache.shard import ShardWriter
from pipeline.cache.write import CacheSpecError, CacheWriter, Failure, ShardConfig
from pipeline.io import is_temporary
from tests.pipeline.cache.shards import rows, spec

REPO = Path(__file__).resolve().parents[3]


def temporaries(root: Path) -> list[Path]:
    return [p for p in (root / "shards").iterdir() if is_temporary(p.name)]


def test_rows_in_any_order_make_row_groups_in_frame_order(tmp_path):
    writer = CacheWriter(str(tmp_path), spec(), shard=ShardConfig(row_group_size=4))
    table, face, maps, _ = rows(14)
    shard = writer.opener().open("v", "v")
    for start, stop in ((5, 10), (0, 3)):  # frames 3 and 4 are late: 5..9 wait in memory
        shard.add(table.slice(start, stop - start))
    assert (shard.written, shard.next_frame, shard.groups) == (0, 3, 0)
    shard.end(14)  # the count may come before the last rows
    shard.add(table.slice(3, 2))
    assert (shard.written, shard.groups, shard.complete) == (8, 2, False)  # two whole groups written
    assert [p.name for p in (tmp_path / "shards").iterdir() if not is_temporary(p.name)] == []
    assert open_cache(str(tmp_path)).subjects() == []  # nothing readable before the shard is closed
    shard.add(table.slice(10, 4))
    assert shard.complete
    entry = writer.record(shard.close())
    assert (entry.frames, entry.faces) == (14, int(face.sum()))
    assert temporaries(tmp_path) == []
    meta = pq.read_metadata(tmp_path / shard_file("v"))
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [4, 4, 4, 2]
    assert read_metadata(meta)["complete"] is True and read_metadata(meta)["faces"] == int(face.sum())
    got = open_cache(str(tmp_path)).read("v")
    assert got.index.tolist() == list(range(14))
    np.testing.assert_array_equal(got.maps[0], maps[0].astype(np.float16))
    assert pq.read_table(tmp_path / "manifest.parquet").to_pylist()[0]["bytes"] == entry.bytes


def test_rows_must_come_once_and_cover_every_frame(tmp_path):
    writer = CacheWriter(str(tmp_path), spec(), shard=ShardConfig(row_group_size=4))
    table = rows(10)[0]
    shard = writer.opener().open("v", "v")
    shard.add(table.slice(0, 5))
    shard.add(table.slice(7, 3))
    with pytest.raises(ValueError, match=r"frames \[4, 6\) of 'v' came twice"):
        shard.add(table.slice(4, 2))
    with pytest.raises(ValueError, match=r"frames \[8, 9\) of 'v' came twice"):
        shard.add(table.slice(8, 1))
    with pytest.raises(ValueError, match="has 9 frames but frames up to 10 came"):
        shard.end(9)
    shard.end(10)
    with pytest.raises(CacheError, match=r"not complete: frames \[0, 5\) of 10"):
        shard.close()
    shard.discard()
    assert list((tmp_path / "shards").iterdir()) == []


def test_a_failed_write_leaves_no_readable_shard(tmp_path, monkeypatch):
    writer = CacheWriter(str(tmp_path), spec(), shard=ShardConfig(row_group_size=4))
    table = rows(10)[0]
    calls = []
    write_table = pq.ParquetWriter.write_table

    def full_after_one_group(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full")
        return write_table(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_after_one_group)
    with pytest.raises(OSError, match="disk full"):
        writer.write_subject("v", "v", table)
    assert list((tmp_path / "shards").iterdir()) == []  # temporary file removed
    assert open_cache(str(tmp_path)).subjects() == []
    monkeypatch.undo()
    assert writer.write_subject("v", "v", table).frames == 10


# a child process streams a shard, says how many row groups it wrote and waits to be killed
KILLED_WRITER = """
import sys, time
from pipeline.cache.shard import ShardWriter, ShardConfig
from tests.pipeline.cache.shards import rows, spec
shard = ShardWriter(sys.argv[1], spec(), "v", "v", ShardConfig(row_group_size=4))
table = rows(20)[0]
shard.add(table.slice(0, 9))
print(shard.groups, flush=True)
time.sleep(120)
"""


def test_a_killed_write_leaves_no_complete_shard_and_the_rerun_writes_it(tmp_path):
    CacheWriter(str(tmp_path), spec())
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "2"  # two row groups written
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    (left,) = temporaries(tmp_path)
    assert left.stat().st_size > 0  # the killed write's row groups, under a temporary name only
    assert open_cache(str(tmp_path)).subjects() == []
    rerun = CacheWriter(str(tmp_path), spec())
    assert temporaries(tmp_path) == [] and not rerun.is_complete("v")
    table = rows(20)[0]
    assert rerun.write_subject("v", "v", table).frames == 20
    assert open_cache(str(tmp_path)).read("v", maps=False).index.tolist() == list(range(20))


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


def test_a_manifest_rewritten_at_most_so_often_lists_every_shard_at_the_end_or_on_the_next_run(tmp_path):
    writer = CacheWriter(str(tmp_path), spec(), manifest_every_s=3600.0)

    def listed() -> list[str]:
        return [r["subject"] for r in pq.read_table(tmp_path / "manifest.parquet").to_pylist()]

    for name, n in (("a", 6), ("b", 4)):
        shard = writer.opener().open(name, name)
        shard.add(rows(n)[0])
        shard.end(n)
        writer.record(shard.close())
    assert listed() == []  # the manifest was written as the writer opened the cache: both wait
    killed_here = CacheWriter(str(tmp_path), spec())  # a run killed now: the next one lists both again
    assert killed_here.is_complete("a") and killed_here.is_complete("b") and listed() == ["a", "b"]
    (tmp_path / "manifest.parquet").unlink()
    writer.finish()  # the run's end writes what it recorded
    assert listed() == ["a", "b"]
    every = CacheWriter(str(tmp_path / "every"), spec())  # the default: written for each shard
    every.write_subject("c", "c", rows(3)[0])
    assert [r["subject"] for r in pq.read_table(tmp_path / "every" / "manifest.parquet").to_pylist()] == ["c"]


def test_a_shard_writer_needs_the_frames_from_zero(tmp_path):
    shard = ShardWriter(str(tmp_path), spec(), "v", "v")
    shard.add(rows(5, start=3)[0])
    shard.end(8)
    assert not shard.complete
    with pytest.raises(CacheError, match=r"frames \[0, 0\) of 8"):
        shard.close()


def test_failures_table_keeps_unattempted_and_drops_cached(tmp_path):
    writer = CacheWriter(str(tmp_path), spec())
    writer.write_failures(
        [Failure("a", "a", "decode", "empty file"), Failure("b", "b", "faces", "no face")], ["a", "b"]
    )
    writer.write_subject("b", "b", rows(3)[0])
    table = writer.write_failures([Failure("c", "c", "decode", "truncated")], ["b", "c"])
    assert sorted(table["subject"].to_pylist()) == ["a", "c"]
    assert open_cache(str(tmp_path)).failures().num_rows == 2


def test_a_spec_not_known_yet_is_made_only_to_compare_with_a_cache_that_exists(tmp_path):
    made = []

    def describe(**change):
        made.append(change)
        return spec(**change)

    new = CacheWriter(str(tmp_path), describe)  # a new cache: its spec comes with its first shard
    assert made == [] and new.spec is None and new.opener().spec is None
    with pytest.raises(ValueError, match="no spec to write shards"):
        new.opener().open("v", "v")
    new.opener().adopting(spec())  # as the write stage does
    again = CacheWriter(str(tmp_path), describe)
    assert made == [{}] and again.spec == spec()
    with pytest.raises(CacheSpecError, match="min_face_size"):
        CacheWriter(str(tmp_path), lambda: describe(min_face=17))
    rebuilt = CacheWriter(str(tmp_path), describe, rebuild=True)  # cleared: new again
    assert rebuilt.spec is None and len(made) == 2 and not (tmp_path / SPEC_FILE).exists()
