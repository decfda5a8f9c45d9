"""Writing one shard once, as its rows come: `ShardWriter` (one subject's shard) and `ShardOpener` (what
another process needs to open shard writers of a cache; the extraction's write stage holds one).

A shard is written where its rows are, straight into `CACHE/shards/<subject>.parquet` under a temporary
name (`pipeline.io.AtomicFile`): row groups of `ShardConfig.row_group_size` consecutive frames, in frame
order. Rows may come in any order, in runs of consecutive frames; a run ahead of the next frame to write
waits in memory until the frames before it come. `close` writes the footer, which holds the shard's
description (`pipeline.cache.schema.shard_metadata`: frame and face counts, the `complete` flag), and
renames the file into place. So a file under a shard's final name is whole, and a run killed mid-write
leaves only a temporary file, which the next run removes (`pipeline.cache.write.CacheWriter`).

May import: numpy, pyarrow, model.split, pipeline.io, pipeline.cache (layout, schema, spec, read).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from model.split import cache_kind_of
from pipeline.cache.layout import SPEC_FILE, resolve_location, shard_file
from pipeline.cache.read import CacheError
from pipeline.cache.schema import ManifestEntry, shard_metadata, shard_schema
from pipeline.cache.spec import MAP_NAMES, map_names, spec_hash
from pipeline.io import AtomicFile, write_bytes


@dataclass(frozen=True)
class ShardConfig:
    """How shards are laid out on disk."""

    row_group_size: int = 64  # frames per row group: a window read touches one or two groups
    compression: str = "zstd"  # Parquet codec of shards
    compression_level: int | None = 1  # zstd 1: ~35% smaller than none at ~1,000 frames/s per core
    byte_stream_split: bool = True  # split float16 bytes into streams before compression (smaller)


def write_options(cfg: ShardConfig, names: tuple[str, ...] = MAP_NAMES) -> dict[str, Any]:
    """`pyarrow.parquet.ParquetWriter` options of a shard whose map columns are `names` (a crop cache's
    shard: none, its images are already compressed, so no byte stream split)."""
    options: dict[str, Any] = {
        "use_dictionary": ["source"],
        "write_statistics": ["index"],
        "compression": cfg.compression,
    }
    if cfg.compression in ("zstd", "gzip", "brotli") and cfg.compression_level is not None:
        options["compression_level"] = cfg.compression_level
    if cfg.byte_stream_split and names:
        options["use_byte_stream_split"] = [f"{name}.list.element" for name in names]
    return options


class ShardWriter:
    """One subject's shard, written as its rows come and closed once every frame is in.

    `add` takes rows of consecutive frames (the columns of `pipeline.cache.schema.frames_table`), `end`
    the subject's frame count (rows may still come after it); once `complete`, `close` finishes the shard
    and returns its manifest entry. `discard` drops it. Holds at most a row group of rows in order, plus
    the runs that came ahead of their turn.
    """

    def __init__(
        self,
        location: str,
        spec: dict[str, Any],
        subject: str,
        video: str,
        shard: ShardConfig = ShardConfig(),
    ):
        self.spec, self.subject, self.video, self.shard = spec, subject, video, shard
        self._fs, root = resolve_location(location)
        self.path = f"{root}/{shard_file(subject)}"  # the shard's final path
        self.schema = shard_schema(spec)
        self.frames: int | None = None  # the subject's frame count, once `end` told it
        self.written = 0  # frames [0, written) are in the file
        self.faces = 0  # frames with a face among them
        self.groups = 0  # row groups written
        self._held: list[pa.Table] = []  # the frames from `written` on, in order: less than a row group
        self._ahead: dict[int, pa.Table] = {}  # first frame -> a run waiting for the frames before it
        self._file: AtomicFile | None = None  # the temporary file, once the first row group is written
        self._out: pq.ParquetWriter | None = None

    @property
    def next_frame(self) -> int:
        """The first frame that has not come yet in order."""
        return self.written + sum(t.num_rows for t in self._held)

    @property
    def complete(self) -> bool:
        """Every frame of the subject has come."""
        return self.frames is not None and self.next_frame == self.frames and not self._ahead

    def add(self, table: pa.Table) -> None:
        """Rows of consecutive frames [start, stop), in any order of calls; writes the whole row groups."""
        if table.num_rows == 0:
            return
        index = table["index"].to_numpy()
        start, stop = int(index[0]), int(index[-1]) + 1
        if (np.diff(index) != 1).any():
            raise ValueError(f"rows of {self.subject!r} are not consecutive frames: {index[:8].tolist()}...")
        runs = [(s, s + t.num_rows) for s, t in self._ahead.items()]
        if start < self.next_frame or any(start < b and a < stop for a, b in runs):
            raise ValueError(f"frames [{start}, {stop}) of {self.subject!r} came twice")
        if self.frames is not None and stop > self.frames:
            raise ValueError(f"frame {stop - 1} of {self.subject!r}, which has {self.frames} frames")
        self._ahead[start] = table
        while (run := self._ahead.pop(self.next_frame, None)) is not None:
            self._held.append(run)
        self._flush(final=False)

    def end(self, frames: int) -> None:
        """The subject has `frames` frames."""
        last = max([self.next_frame, *(s + t.num_rows for s, t in self._ahead.items())])
        if last > frames:
            raise ValueError(f"{self.subject!r} has {frames} frames but frames up to {last} came")
        self.frames = frames

    def close(self) -> ManifestEntry:
        """Write the last row group and the footer, rename the shard into place; its manifest entry."""
        if not self.complete:
            raise CacheError(
                f"shard of {self.subject!r} is not complete: frames [0, {self.next_frame}) of "
                f"{self.frames if self.frames is not None else 'an unknown number'} came in order"
            )
        self._flush(final=True)
        out, target = self._open()
        out.add_key_value_metadata(
            shard_metadata(self.spec, self.subject, self.video, self.written, self.faces, True)
        )
        out.close()
        target.commit()
        size = self._fs.get_file_info(self.path).size
        return ManifestEntry(
            self.subject,
            self.video,
            self.written,
            self.faces,
            size,
            spec_hash(self.spec),
            shard_file(self.subject),
        )

    def discard(self) -> None:
        """Drop the shard: close and remove its temporary file, forget the rows held."""
        self._held, self._ahead = [], {}
        if self._out is not None:
            with contextlib.suppress(Exception):  # the file is removed whatever its state
                self._out.close()
        if self._file is not None:
            self._file.abort()

    def _open(self) -> tuple[pq.ParquetWriter, AtomicFile]:
        if self._out is None or self._file is None:
            self._file = AtomicFile(self.path, self._fs)
            self._out = pq.ParquetWriter(
                self._file.path,
                self.schema,
                filesystem=self._fs,
                **write_options(
                    self.shard, () if cache_kind_of(self.spec) == "crops" else map_names(self.spec)
                ),
            )
        return self._out, self._file

    def _flush(self, final: bool) -> None:
        # write the held rows as whole row groups of row_group_size frames; the remainder too at the end
        size = self.shard.row_group_size
        rows = sum(t.num_rows for t in self._held)
        whole = rows if final else rows - rows % size
        if whole == 0:
            return
        table = pa.concat_tables(self._held)
        out, _ = self._open()
        for offset in range(0, whole, size):
            out.write_table(table.slice(offset, min(size, whole - offset)), row_group_size=size)
            self.groups += 1
        self.faces += int(pc.sum(table["face"].slice(0, whole)).as_py() or 0)
        self.written += whole
        self._held = [table.slice(whole)] if whole < rows else []


@dataclass(frozen=True)
class ShardOpener:
    """What a process needs to open shard writers of a cache; picklable (the write stage gets one)."""

    location: str  # cache location: a folder or a pyarrow filesystem URI
    spec: dict[str, Any] | None  # the cache spec; None: not known yet (`adopting`)
    shard: ShardConfig = ShardConfig()  # shard layout

    def open(self, subject: str, video: str) -> ShardWriter:
        if self.spec is None:
            raise ValueError(f"no spec to write shards of the cache at {self.location} with yet")
        return ShardWriter(self.location, self.spec, subject, video, self.shard)

    def adopting(self, spec: dict[str, Any]) -> ShardOpener:
        """This opener with `spec`, written first as the cache's spec file (a new cache's, where the driver
        did not know it: `pipeline.cache.write.CacheWriter`), so that a shard in place always has one."""
        write_spec(*resolve_location(self.location), spec)
        return replace(self, spec=spec)


def write_spec(fs: pafs.FileSystem, root: str, spec: dict[str, Any]) -> None:
    """Write `spec` as the spec file of the cache at `root`, atomically."""
    write_bytes(f"{root}/{SPEC_FILE}", json.dumps(spec, indent=2).encode(), fs)
