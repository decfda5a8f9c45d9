"""Writing the feature cache: spec check, per-chunk part files, atomic shard assembly, manifest, failures.

An extraction writes each chunk of rows as a part file `CACHE/parts/<run>/<subject>/<start>-<stop>.parquet`
(each written under a temporary name, then renamed). Once a subject's parts cover all its frames, they are
assembled into `CACHE/shards/<subject>.parquet`: written under a temporary name in the same folder with
the `complete` flag in its metadata and renamed into place, so a partial shard is never readable as
complete. A rerun skips complete shards of the same spec, redoes the rest, and refuses a cache made with
other settings unless asked to rebuild it. One extraction per cache at a time.

May import: pyarrow, pipeline.io, pipeline.cache (layout, spec, schema, read).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.cache.layout import (
    FAILURES_FILE,
    MANIFEST_FILE,
    PARTS_DIR,
    SHARDS_DIR,
    SPEC_FILE,
    part_dir,
    part_file,
    part_span,
    resolve_location,
    shard_file,
)
from pipeline.cache.read import CacheError, complete_shards, read_json, read_table_or_empty
from pipeline.cache.schema import (
    FAILURES_SCHEMA,
    MANIFEST_SCHEMA,
    ManifestEntry,
    frame_schema,
    shard_metadata,
)
from pipeline.cache.spec import MAP_NAMES, spec_differences, spec_hash
from pipeline.io import atomic_path, is_temporary, write_bytes, write_table


class CacheSpecError(CacheError):
    """The cache at a location was made with other settings."""


@dataclass(frozen=True)
class ShardConfig:
    """How shards are laid out on disk."""

    row_group_size: int = 64  # frames per row group: a window read touches one or two groups
    compression: str = "zstd"  # Parquet codec of shards
    compression_level: int | None = 1  # zstd 1: ~35% smaller than none at ~1,000 frames/s per core
    byte_stream_split: bool = True  # split float16 bytes into streams before compression (smaller)
    part_compression: str = "lz4"  # codec of temporary part files (fast; they live minutes)


@dataclass(frozen=True)
class Failure:
    """One input that could not be cached: a row of `FAILURES_SCHEMA`."""

    video: str  # video name
    subject: str  # subject name ("" where the video has none)
    stage: str  # decode | faces | features | write | pipeline
    reason: str  # human-readable cause, naming the file


def _write_options(cfg: ShardConfig, part: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"use_dictionary": ["source"], "write_statistics": ["index"]}
    if part:
        return options | {"compression": cfg.part_compression}
    options["compression"] = cfg.compression
    if cfg.compression in ("zstd", "gzip", "brotli") and cfg.compression_level is not None:
        options["compression_level"] = cfg.compression_level
    if cfg.byte_stream_split:
        options["use_byte_stream_split"] = [f"{name}.list.element" for name in MAP_NAMES]
    return options


class PartWriter:
    """Writes chunks of rows as part files; runs in the pipeline's write stage (picklable)."""

    def __init__(self, location: str, run_id: str, spec: dict[str, Any], shard: ShardConfig = ShardConfig()):
        self.location, self.run_id, self.spec, self.shard = location, run_id, spec, shard
        self._fs, self._root = resolve_location(location)
        self.schema = frame_schema(spec["boundary"], spec["dtype"])

    def __reduce__(self):
        return (PartWriter, (self.location, self.run_id, self.spec, self.shard))

    def part_dir(self, subject: str) -> str:
        return part_dir(self._root, self.run_id, subject)

    def write(self, subject: str, video: str, table: pa.Table) -> str:
        """Write rows of one subject with contiguous indices [start, stop); returns the part path."""
        index = table["index"].to_numpy()
        start, stop = int(index[0]), int(index[-1]) + 1
        if stop - start != table.num_rows:
            raise ValueError(
                f"part of {subject!r} is not contiguous: {table.num_rows} rows over [{start}, {stop})"
            )
        faces = int(pc.sum(table["face"]).as_py() or 0)
        meta = shard_metadata(self.spec, subject, video, table.num_rows, faces, complete=False)
        folder = self.part_dir(subject)
        self._fs.create_dir(folder, recursive=True)
        path = f"{folder}/{part_file(start, stop)}"
        write_table(path, table.replace_schema_metadata(meta), self._fs, **_write_options(self.shard, True))
        return path


class CacheWriter:
    """The driver's side of writing a cache: spec check, resume, shard assembly, manifest and failures."""

    def __init__(
        self, location: str, spec: dict[str, Any], rebuild: bool = False, shard: ShardConfig = ShardConfig()
    ):
        self.location, self.spec, self.shard = location, spec, shard
        self.spec_hash = spec_hash(spec)
        self.fs, self.root = resolve_location(location)
        self._lock = threading.Lock()
        old = read_json(self.fs, f"{self.root}/{SPEC_FILE}")
        if old is not None and rebuild:
            self._clear()
        elif old is not None and spec_hash(old) != self.spec_hash:
            lines = "\n  ".join(spec_differences(old, spec))
            raise CacheSpecError(
                f"the cache at {location} was made with other settings:\n  {lines}\n"
                "pass --rebuild (rebuild=True) to replace it, or choose another cache location"
            )
        self.fs.create_dir(f"{self.root}/{SHARDS_DIR}", recursive=True)
        if old is None or rebuild:
            write_bytes(f"{self.root}/{SPEC_FILE}", json.dumps(spec, indent=2).encode(), self.fs)
        self._remove_leftovers()
        self.entries: dict[str, ManifestEntry] = self._complete_shards()
        self._write_manifest()

    def _clear(self) -> None:
        for folder in (SHARDS_DIR, PARTS_DIR):
            if self.fs.get_file_info(f"{self.root}/{folder}").type == pafs.FileType.Directory:
                self.fs.delete_dir(f"{self.root}/{folder}")
        for name in (MANIFEST_FILE, FAILURES_FILE, SPEC_FILE):
            if self.fs.get_file_info(f"{self.root}/{name}").type == pafs.FileType.File:
                self.fs.delete_file(f"{self.root}/{name}")

    def _remove_leftovers(self) -> None:
        # temporary files and part folders of runs that were interrupted
        if self.fs.get_file_info(f"{self.root}/{PARTS_DIR}").type == pafs.FileType.Directory:
            self.fs.delete_dir(f"{self.root}/{PARTS_DIR}")
        for info in self.fs.get_file_info(
            pafs.FileSelector(f"{self.root}/{SHARDS_DIR}", allow_not_found=True)
        ):
            if is_temporary(info.base_name):
                self.fs.delete_file(info.path)

    def _complete_shards(self) -> dict[str, ManifestEntry]:
        return {s: entry for s, (entry, _) in complete_shards(self.fs, self.root, self.spec_hash).items()}

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def new_run(self) -> str:
        """A fresh run id; its part files go under CACHE/parts/<run>/."""
        return uuid.uuid4().hex[:12]

    def part_writer(self, run_id: str) -> PartWriter:
        return PartWriter(self.location, run_id, self.spec, self.shard)

    def is_complete(self, subject: str) -> bool:
        return subject in self.entries

    def assemble(self, run_id: str, subject: str, video: str, frames: int) -> ManifestEntry:
        """Join a subject's part files into its shard (atomic) and record it in the manifest."""
        writer = self.part_writer(run_id)
        folder = writer.part_dir(subject)
        parts = sorted(
            (i for i in self.fs.get_file_info(pafs.FileSelector(folder)) if not is_temporary(i.base_name)),
            key=lambda i: i.base_name,
        )
        spans = [part_span(p.base_name) for p in parts]
        covered = 0
        for start, stop in spans:
            if start != covered:
                raise CacheError(f"parts of {subject!r} do not cover frames [{covered}, {start})")
            covered = stop
        if covered != frames:
            raise CacheError(f"parts of {subject!r} cover {covered} of {frames} frames")
        faces = sum(
            int(pc.sum(pq.read_table(p.path, columns=["face"], filesystem=self.fs)["face"]).as_py() or 0)
            for p in parts
        )
        path = f"{self.root}/{shard_file(subject)}"
        schema = writer.schema.with_metadata(shard_metadata(self.spec, subject, video, frames, faces, True))
        options = _write_options(self.shard, False)
        with (
            atomic_path(path, self.fs) as tmp,
            pq.ParquetWriter(tmp, schema, filesystem=self.fs, **options) as out,
        ):
            pending: list[pa.Table] = []
            for i, part in enumerate(parts):
                pending.append(pq.read_table(part.path, filesystem=self.fs).replace_schema_metadata(None))
                pending = self._flush(out, pending, final=i == len(parts) - 1)
        self.fs.delete_dir(folder)
        entry = ManifestEntry(
            subject,
            video,
            frames,
            faces,
            self.fs.get_file_info(path).size,
            self.spec_hash,
            shard_file(subject),
        )
        with self._lock:
            self.entries[subject] = entry
            self._write_manifest()
        return entry

    def _flush(self, out: pq.ParquetWriter, pending: list[pa.Table], final: bool) -> list[pa.Table]:
        # write whole row groups of row_group_size frames; keep the remainder unless this is the end
        size = self.shard.row_group_size
        rows = sum(t.num_rows for t in pending)
        if rows < size and not final:
            return pending
        table = pa.concat_tables(pending)
        whole = rows if final else rows - rows % size
        for offset in range(0, whole, size):
            out.write_table(table.slice(offset, min(size, whole - offset)), row_group_size=size)
        return [table.slice(whole)] if whole < rows else []

    def write_subject(self, subject: str, video: str, table: pa.Table) -> ManifestEntry:
        """Write a whole subject at once (rows from `pipeline.cache.schema.frames_table`, indices 0..N-1)."""
        run_id = self.new_run()
        writer = self.part_writer(run_id)
        for start in range(0, table.num_rows, self.shard.row_group_size * 4):
            writer.write(subject, video, table.slice(start, self.shard.row_group_size * 4))
        try:
            return self.assemble(run_id, subject, video, table.num_rows)
        finally:
            folder = f"{self.root}/{PARTS_DIR}/{run_id}"
            if self.fs.get_file_info(folder).type == pafs.FileType.Directory:
                self.fs.delete_dir(folder)

    def discard(self, run_id: str, subject: str) -> None:
        """Delete the part files of a subject (after a failure)."""
        folder = self.part_writer(run_id).part_dir(subject)
        if self.fs.get_file_info(folder).type == pafs.FileType.Directory:
            self.fs.delete_dir(folder)

    def finish(self) -> None:
        """Remove the part files: this run's, and any that workers of a killed run wrote after it died.

        One extraction per cache at a time: once a run ends, every part folder is stale."""
        folder = f"{self.root}/{PARTS_DIR}"
        if self.fs.get_file_info(folder).type == pafs.FileType.Directory:
            self.fs.delete_dir(folder)

    def _write_manifest(self) -> None:
        rows = [asdict(e) for _, e in sorted(self.entries.items())]
        table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
        write_table(self._path(MANIFEST_FILE), table, self.fs)

    def write_failures(self, failures: Iterable[Failure], attempted: Iterable[str]) -> pa.Table:
        """Record this run's failures; keep earlier ones of subjects not attempted now and still not cached."""
        attempted = set(attempted)
        old = read_table_or_empty(self.fs, self._path(FAILURES_FILE), FAILURES_SCHEMA).to_pylist()
        rows = [r for r in old if r["subject"] not in attempted and r["subject"] not in self.entries]
        rows += [asdict(f) for f in failures]
        table = pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA)
        write_table(self._path(FAILURES_FILE), table, self.fs)
        return table
