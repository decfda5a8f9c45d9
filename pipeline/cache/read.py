"""Reading the feature cache: the spec, the manifest and failures tables, and row ranges of shards.

Shards are written under a temporary name and renamed into place once complete (`pipeline.cache.write`),
so a shard under its final name is always whole; `complete_shards` tells which ones were made with a given
spec. `FeatureCache.read` reads only the row groups that hold the requested rows. File layout:
`pipeline.cache.layout`.

May import: numpy, pyarrow, model.split, pipeline.cache (layout, schema, spec, crops).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from model.split import cache_kind_of
from pipeline.cache.crops import decode_crops
from pipeline.cache.layout import (
    FAILURES_FILE,
    MANIFEST_FILE,
    SPEC_FILE,
    list_shards,
    resolve_location,
    shard_file,
)
from pipeline.cache.schema import CROP_COLUMN, FAILURES_SCHEMA, MANIFEST_SCHEMA, ManifestEntry, read_metadata
from pipeline.cache.spec import map_names, spec_hash

OPEN_FILES = 32  # shard footers kept open per thread


class CacheError(RuntimeError):
    """A cache that cannot be used: missing, incomplete subject, or made with other settings."""


def read_json(fs: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    """A JSON file's content, None when it does not exist."""
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


def read_table_or_empty(fs: pafs.FileSystem, path: str, schema: pa.Schema) -> pa.Table:
    """A small Parquet table (manifest, failures), an empty one of `schema` when the file is absent."""
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return schema.empty_table()
    return pq.read_table(path, filesystem=fs).cast(schema)


def complete_shards(fs: pafs.FileSystem, root: str, made_with: str) -> dict[str, tuple[ManifestEntry, str]]:
    """Subject -> (manifest entry, shard path) of every complete shard made with the spec of hash `made_with`,
    sorted by subject: the manifest's row where it lists the shard as it is (same spec hash, same size),
    else the shard's own footer; a shard that is not a whole Parquet file is not complete."""
    manifest = {
        row["subject"]: row
        for row in read_table_or_empty(fs, f"{root}/{MANIFEST_FILE}", MANIFEST_SCHEMA).to_pylist()
    }
    entries = {}
    for subject, info in list_shards(fs, root).items():
        row = manifest.get(subject)
        if row is not None and row["spec_hash"] == made_with and row["bytes"] == info.size:
            entries[subject] = (ManifestEntry(**row), info.path)
            continue
        try:
            meta = read_metadata(pq.read_metadata(info.path, filesystem=fs))
        except (OSError, pa.ArrowException):  # not a whole Parquet file
            continue
        if meta.get("complete") and meta.get("spec_hash") == made_with:
            entry = ManifestEntry(
                subject,
                meta["video"],
                meta["frames"],
                meta["faces"],
                info.size,
                made_with,
                shard_file(subject),
            )
            entries[subject] = (entry, info.path)
    return dict(sorted(entries.items()))


@dataclass
class ShardFeatures:
    """Rows [start, stop) of one subject's shard."""

    subject: str  # subject name
    video: str  # video the subject is in
    index: np.ndarray  # (N,) int32 0-based decode index
    face: np.ndarray  # (N,) bool: a face was found (maps are zero where not)
    # the cached maps (N = 2: (N, 64, 28, 28), (N, 96, 14, 14)) float16; a crop cache: ((N, 3, S, S) uint8
    # crops,), all zero where no face; empty tuple when not read
    maps: tuple[np.ndarray, ...]
    # (N, 4) float32 x1, y1, x2, y2 in full-frame pixels (NaN where unknown; a face cut by the frame's edge
    # has its whole box, past the edge)
    box: np.ndarray
    score: np.ndarray  # (N,) float32 detector score
    landmarks: np.ndarray  # (N, 5, 2) float32 five points x, y
    source: np.ndarray  # (N,) str: one of pipeline.faces.track.SOURCES


def _fixed_list_to_numpy(column: pa.ChunkedArray, shape: tuple[int, ...]) -> np.ndarray:
    # n fixed-size lists -> (n, *shape); flatten() respects slicing offsets
    array = column.combine_chunks()
    return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), *shape)


class FeatureCache:
    """Read access to a feature cache. Safe to pickle (open files are reopened in the new process)."""

    def __init__(self, location: str):
        self.location = location
        self._fs, self._root = resolve_location(location)
        spec = read_json(self._fs, f"{self._root}/{SPEC_FILE}")
        if spec is None:
            raise CacheError(
                f"no feature cache at {location} ({SPEC_FILE} missing); make one with `lwaffect extract`"
            )
        self.spec: dict[str, Any] = spec
        self.spec_hash = spec_hash(spec)
        self._shapes = tuple(tuple(shape) for shape in spec["boundary"])
        self.map_names = map_names(spec)  # the cached maps' columns, in the order `read` returns them
        self.kind = cache_kind_of(spec)  # "maps" or "crops" (`pipeline.cache.crops`)
        self._entries = self._load_entries()
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"])  # type: ignore[misc]

    def _load_entries(self) -> dict[str, tuple[ManifestEntry, str]]:
        return complete_shards(self._fs, self._root, self.spec_hash)

    def refresh(self) -> None:
        """Re-list the shards (after an extraction added some)."""
        self._entries = self._load_entries()
        self._local = threading.local()

    def subjects(self) -> list[str]:
        """Subjects with a complete shard made with this cache's spec, sorted by name."""
        return list(self._entries)

    def _entry(self, subject: str) -> ManifestEntry:
        return self._shard(subject)[0]

    def _shard(self, subject: str) -> tuple[ManifestEntry, str]:
        try:
            return self._entries[subject]
        except KeyError:
            raise CacheError(f"subject {subject!r} has no complete shard in {self.location}") from None

    def num_frames(self, subject: str) -> int:
        """Number of rows (decoded frames) of a subject's shard."""
        return int(self._entry(subject).frames)

    def num_faces(self, subject: str) -> int:
        """Number of frames of a subject where a face was found."""
        return int(self._entry(subject).faces)

    def video(self, subject: str) -> str:
        """Name of the video a subject is in."""
        return str(self._entry(subject).video)

    def manifest(self) -> pa.Table:
        """The manifest table (subject, video, frames, faces, bytes, spec_hash, file)."""
        return read_table_or_empty(self._fs, f"{self._root}/{MANIFEST_FILE}", MANIFEST_SCHEMA)

    def failures(self) -> pa.Table:
        """The failures of the last extraction (video, subject, stage, reason)."""
        return read_table_or_empty(self._fs, f"{self._root}/{FAILURES_FILE}", FAILURES_SCHEMA)

    def metadata(self, subject: str) -> dict[str, Any]:
        """The JSON description stored in a subject's shard."""
        return read_metadata(self._file(subject).metadata)

    def _file(self, subject: str) -> pq.ParquetFile:
        files: OrderedDict[str, pq.ParquetFile] = getattr(self._local, "files", None) or OrderedDict()
        self._local.files = files
        if subject in files:
            files.move_to_end(subject)
            return files[subject]
        handle = pq.ParquetFile(self._fs.open_input_file(self._shard(subject)[1]))
        files[subject] = handle
        if len(files) > OPEN_FILES:
            files.popitem(last=False)
        return handle

    def read(self, subject: str, start: int = 0, stop: int | None = None, maps: bool = True) -> ShardFeatures:
        """Rows [start, stop) of a subject; reads only the row groups that hold them."""
        total = self.num_frames(subject)
        stop = total if stop is None else min(stop, total)
        start = max(0, start)
        if stop < start:
            raise ValueError(f"empty or reversed row range [{start}, {stop}) of {subject!r}")
        handle = self._file(subject)
        groups, first, offset = [], 0, 0
        for g in range(handle.metadata.num_row_groups):
            n = handle.metadata.row_group(g).num_rows
            if offset < stop and offset + n > start:
                groups.append(g)
                first = offset if len(groups) == 1 else first
            offset += n
        columns = ["index", "face", "x1", "y1", "x2", "y2", "score", "landmarks", "source"]
        stored = [CROP_COLUMN] if self.kind == "crops" else list(self.map_names)
        columns += stored if maps else []
        if groups:
            table = handle.read_row_groups(groups, columns=columns).slice(start - first, stop - start)
        else:
            table = handle.schema_arrow.empty_table().select(columns)
        n = table.num_rows
        return ShardFeatures(
            subject=subject,
            video=self.video(subject),
            index=table["index"].to_numpy().astype(np.int32, copy=False),
            face=table["face"].to_numpy(zero_copy_only=False).astype(bool, copy=False),
            maps=self._maps(table) if maps else (),
            box=np.stack([table[c].to_numpy() for c in ("x1", "y1", "x2", "y2")], axis=1).reshape(n, 4),
            score=table["score"].to_numpy(),
            landmarks=_fixed_list_to_numpy(table["landmarks"], (5, 2)),
            source=np.asarray(table["source"].to_pylist(), dtype=object),
        )

    def _maps(self, table: pa.Table) -> tuple[np.ndarray, ...]:
        """The cached tuple of rows: the maps, or a crop cache's decoded crops."""
        if self.kind == "crops":
            return (decode_crops(table[CROP_COLUMN].to_pylist(), int(self.spec["input_size"])),)
        return tuple(
            _fixed_list_to_numpy(table[m], s) for m, s in zip(self.map_names, self._shapes, strict=True)
        )


def open_cache(location: str) -> FeatureCache:
    """Open a feature cache made by `lwaffect extract` (a local folder or a pyarrow filesystem URI)."""
    return FeatureCache(location)
