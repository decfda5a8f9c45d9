"""Writing the feature cache, the driver's side: spec check, resume, the manifest and the failures table.

Shards are written once, where their rows are (`pipeline.cache.shard`): each under a temporary name in
`CACHE/shards/`, renamed into place when complete, with the `complete` flag in its footer; so a partial
shard is never readable as complete. `CacheWriter` records each complete shard in the manifest. A rerun
skips complete shards of the same spec, removes the temporary files of an interrupted run, redoes the rest,
and refuses a cache made with other settings unless asked to rebuild it. One extraction per cache at a time.
A new cache's spec may come from the processes that write its shards (the first shard's writer writes
`spec.json` before it opens the shard), so that the driver need not build a model to describe it.

May import: pyarrow, model.split, pipeline.io, pipeline.cache (layout, spec, schema, read, shard).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from model.split import cache_kind_of
from pipeline.cache.layout import (
    FAILURES_FILE,
    MANIFEST_FILE,
    PARTS_DIR,
    SHARDS_DIR,
    SPEC_FILE,
    resolve_location,
)
from pipeline.cache.read import CacheError, complete_shards, read_json, read_table_or_empty
from pipeline.cache.schema import FAILURES_SCHEMA, MANIFEST_SCHEMA, ManifestEntry
from pipeline.cache.shard import ShardConfig, ShardOpener, write_spec
from pipeline.cache.spec import spec_differences, spec_hash
from pipeline.io import is_temporary, write_table


class CacheSpecError(CacheError):
    """The cache at a location was made with other settings."""


@dataclass(frozen=True)
class Failure:
    """One input that could not be cached: a row of `FAILURES_SCHEMA`."""

    video: str  # video name
    subject: str  # subject name ("" where the video has none)
    stage: str  # decode | faces | features | write | pipeline
    reason: str  # human-readable cause, naming the file


class CacheWriter:
    """The driver's side of writing a cache: spec check, resume, manifest and failures."""

    def __init__(
        self,
        location: str,
        spec: dict[str, Any] | Callable[[], dict[str, Any]],
        rebuild: bool = False,
        shard: ShardConfig = ShardConfig(),
        manifest_every_s: float = 0.0,
    ):
        """`spec`: the cache spec, or what makes it where the driver does not know it yet. That is called
        only to compare with a cache that exists; a new cache takes the spec its first shard is written with
        (the write stage writes it, `ShardOpener.adopting`; the driver `adopt`s it from that shard's
        summary, or `settle`s it at the end of a run that wrote none).

        `manifest_every_s`: the manifest is rewritten for a recorded shard only where the last write is at
        least this old (0: for every shard); `finish` writes what is left. Each write is the whole table
        (36 ms at 594 shards, 142 at 17,000 on the 2-core machine), so a run of many short clips would
        otherwise spend most of its driver's time there. A run killed meanwhile leaves complete shards the
        manifest does not list yet; the next run lists them again from their footers (`complete_shards`)."""
        self.location, self.shard = location, shard
        self.manifest_every_s = manifest_every_s
        self._manifest_at: float | None = None  # time.monotonic() of the last manifest write
        self._manifest_behind = False  # a recorded shard is not in the manifest file yet
        self.describe = spec if callable(spec) else None
        self.fs, self.root = resolve_location(location)
        old = read_json(self.fs, f"{self.root}/{SPEC_FILE}")
        if old is not None and rebuild:
            self._clear()
            old = None
        if old is not None:
            spec = spec() if callable(spec) else spec
            self._check(old, spec)
        self.fs.create_dir(f"{self.root}/{SHARDS_DIR}", recursive=True)
        if old is None and not callable(spec):
            write_spec(self.fs, self.root, spec)
        self.spec: dict[str, Any] | None = None if callable(spec) else spec  # None: not known yet
        self.spec_hash = None if self.spec is None else spec_hash(self.spec)
        self.finish()
        self.entries: dict[str, ManifestEntry] = (
            {}
            if self.spec_hash is None  # a new cache: nothing in it is complete
            else {s: entry for s, (entry, _) in complete_shards(self.fs, self.root, self.spec_hash).items()}
        )
        self._write_manifest()

    def _check(self, old: dict[str, Any], spec: dict[str, Any]) -> None:
        if spec_hash(old) == spec_hash(spec):
            return
        lines = "\n  ".join(spec_differences(old, spec))
        kinds = cache_kind_of(old), cache_kind_of(spec)
        holds = (
            f" (it holds {kinds[0]}, this extraction makes {kinds[1]}: --cache-kind)"
            if kinds[0] != kinds[1]
            else ""
        )
        raise CacheSpecError(
            f"the cache at {self.location} was made with other settings{holds}:\n  {lines}\n"
            "pass --rebuild (rebuild=True) to replace it, or choose another cache location"
        )

    def adopt(self, spec: dict[str, Any]) -> None:
        """Take `spec` as this new cache's, where the driver did not know it (the write stage wrote it into
        the cache before its first shard opened); a spec known already stays."""
        if self.spec is None:
            self.spec, self.spec_hash = spec, spec_hash(spec)

    def settle(self) -> None:
        """At the end of a run that closed no shard of a new cache: its spec as the write stage wrote it,
        else (no shard was opened) as the driver makes it, so that every cache has one."""
        if self.spec is not None or self.describe is None:
            return
        spec = read_json(self.fs, f"{self.root}/{SPEC_FILE}")
        if spec is None:
            spec = self.describe()
            write_spec(self.fs, self.root, spec)
        self.adopt(spec)

    def _clear(self) -> None:
        for folder in (SHARDS_DIR, PARTS_DIR):
            if self.fs.get_file_info(f"{self.root}/{folder}").type == pafs.FileType.Directory:
                self.fs.delete_dir(f"{self.root}/{folder}")
        for name in (MANIFEST_FILE, FAILURES_FILE, SPEC_FILE):
            if self.fs.get_file_info(f"{self.root}/{name}").type == pafs.FileType.File:
                self.fs.delete_file(f"{self.root}/{name}")

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def opener(self) -> ShardOpener:
        """What the processes that write shards need (picklable; without a spec while it is not known)."""
        return ShardOpener(self.location, self.spec, self.shard)

    def is_complete(self, subject: str) -> bool:
        return subject in self.entries

    def record(self, entry: ManifestEntry) -> ManifestEntry:
        """List a shard that was closed (renamed into place) in the manifest (written at once, or within
        `manifest_every_s`, or by `finish`)."""
        self.entries[entry.subject] = entry
        if self._manifest_at is None or time.monotonic() - self._manifest_at >= self.manifest_every_s:
            self._write_manifest()
        else:
            self._manifest_behind = True
        return entry

    def write_subject(self, subject: str, video: str, table: pa.Table) -> ManifestEntry:
        """Write a whole subject at once (rows from `pipeline.cache.schema.frames_table`, indices 0..N-1)."""
        writer = self.opener().open(subject, video)
        try:
            writer.add(table)
            writer.end(table.num_rows)
            entry = writer.close()
        except BaseException:
            writer.discard()
            raise
        return self.record(entry)

    def finish(self) -> None:
        """Write the manifest where a recorded shard is not in it yet; remove what unfinished writes left:
        temporary shard files (and part files of older versions).

        One extraction per cache at a time: before and after a run, every temporary file is stale."""
        if self._manifest_behind:
            self._write_manifest()
        if self.fs.get_file_info(f"{self.root}/{PARTS_DIR}").type == pafs.FileType.Directory:
            self.fs.delete_dir(f"{self.root}/{PARTS_DIR}")
        for info in self.fs.get_file_info(
            pafs.FileSelector(f"{self.root}/{SHARDS_DIR}", allow_not_found=True)
        ):
            if is_temporary(info.base_name):
                self.fs.delete_file(info.path)

    def _write_manifest(self) -> None:
        rows = [asdict(e) for _, e in sorted(self.entries.items())]
        table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
        write_table(self._path(MANIFEST_FILE), table, self.fs)
        self._manifest_at, self._manifest_behind = time.monotonic(), False

    def write_failures(self, failures: Iterable[Failure], attempted: Iterable[str]) -> pa.Table:
        """Record this run's failures; keep earlier ones of subjects not attempted now and still not cached."""
        attempted = set(attempted)
        old = read_table_or_empty(self.fs, self._path(FAILURES_FILE), FAILURES_SCHEMA).to_pylist()
        rows = [r for r in old if r["subject"] not in attempted and r["subject"] not in self.entries]
        rows += [asdict(f) for f in failures]
        table = pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA)
        write_table(self._path(FAILURES_FILE), table, self.fs)
        return table
