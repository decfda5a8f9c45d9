"""Where a feature cache keeps its files: locations, folders, file names and the shards under their final names.

Layout of a cache at CACHE (a local folder or a pyarrow filesystem URI such as `file:///...`, `s3://...`):

```
CACHE/cache.json               the cache spec (`pipeline.cache.spec`)
CACHE/shards/<subject>.parquet one shard per subject (name encoded by `encode_subject`)
CACHE/manifest.parquet         subject, video, frames, faces, bytes, spec_hash, file
CACHE/failures.parquet         video, subject, stage, reason of the last extraction's failures
```

Every file is written under a temporary name (`pipeline.io.temporary_name`) in its folder and renamed into
place, so a file under its final name is whole; temporary files are never listed as shards. A shard in
the making is such a temporary file in `CACHE/shards/` (`pipeline.cache.shard`). Older versions kept part
files in `CACHE/parts/`; a writer removes that folder where it finds one.

May import: pyarrow, pipeline.io.
"""

from __future__ import annotations

import os

import pyarrow.fs as pafs

from pipeline.io import is_temporary

SPEC_FILE = "cache.json"
SHARDS_DIR = "shards"
PARTS_DIR = "parts"  # part files of older versions' extractions (removed on sight)
MANIFEST_FILE = "manifest.parquet"
FAILURES_FILE = "failures.parquet"
SHARD_SUFFIX = ".parquet"


def resolve_location(location: str) -> tuple[pafs.FileSystem, str]:
    """A filesystem and root path for a local path or a pyarrow filesystem URI."""
    if "://" in location:
        fs, root = pafs.FileSystem.from_uri(location)
        return fs, root.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(location)


def encode_subject(name: str) -> str:
    """A file-name-safe, reversible encoding of a subject name (AH names contain `/`)."""
    out = []
    for i, ch in enumerate(name):
        if ch.isascii() and (ch.isalnum() or ch in "-_" or (ch == "." and i > 0)):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def decode_subject(encoded: str) -> str:
    """Inverse of `encode_subject`."""
    raw = bytearray()
    i = 0
    while i < len(encoded):
        if encoded[i] == "%":
            raw.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(encoded[i].encode("ascii"))
            i += 1
    return raw.decode("utf-8")


def shard_file(subject: str) -> str:
    """Shard path of a subject relative to the cache root."""
    return f"{SHARDS_DIR}/{encode_subject(subject)}{SHARD_SUFFIX}"


def list_shards(fs: pafs.FileSystem, root: str) -> dict[str, pafs.FileInfo]:
    """Subject name -> file info of every shard under its final name."""
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{SHARDS_DIR}", allow_not_found=True))
    out = {}
    for info in infos:
        name = info.base_name
        if info.type == pafs.FileType.File and name.endswith(SHARD_SUFFIX) and not is_temporary(name):
            out[decode_subject(name[: -len(SHARD_SUFFIX)])] = info
    return out
