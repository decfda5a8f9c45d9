"""Files written whole or not at all, and values made JSON-safe.

Every file a reader may open while it is being made (cache shards, manifests, checkpoints, training state,
predictions, submissions, synthetic data) is written under a temporary name in its target folder and renamed
into place once complete, so the final name never holds a partial file; on failure the temporary file is
removed. A target is a local path (its folder is created) or a path on a pyarrow filesystem (local, S3, ...;
the folder must exist). A temporary name starts with `TMP_PREFIX` (hidden) and ends with `TMP_SUFFIX`, so
neither a listing of the folder nor a reader looking for the target's suffix takes it for a finished file.
`atomic_path` is for a file written within one block, `AtomicFile` for one written over a long time.

May import: the standard library and pyarrow.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

TMP_PREFIX = ".tmp-"  # a temporary file's name starts with this
TMP_SUFFIX = ".tmp"  # and ends with this


def temporary_name(name: str) -> str:
    """A fresh temporary file name for a file called `name`."""
    return f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}{TMP_SUFFIX}"


def is_temporary(name: str) -> bool:
    """Whether a file name is one `temporary_name` made."""
    return name.startswith(TMP_PREFIX)


class AtomicFile:
    """A file made under a temporary name in its target's folder: `commit` renames it to the target,
    `abort` removes it. For a file written over a long time (a cache shard streamed row group by row
    group); `atomic_path` is the same for a file written within one block. `path`: the target, a local
    path (its folder is created) or a path on the pyarrow filesystem `fs` (the folder must exist)."""

    def __init__(self, path: str | os.PathLike[str], fs: pafs.FileSystem | None = None):
        self.target, self.fs = str(path), fs
        if fs is None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            folder, name = str(Path(path).parent), Path(path).name
        else:
            folder, _, name = self.target.rpartition("/")
        self.path = f"{folder}/{temporary_name(name)}"  # where to write the file

    def commit(self) -> None:
        """Rename the written file to the target (replacing any file there)."""
        if self.fs is None:
            os.replace(self.path, self.target)
        else:
            self.fs.move(self.path, self.target)

    def abort(self) -> None:
        """Remove the temporary file, if it was created."""
        if self.fs is None:
            Path(self.path).unlink(missing_ok=True)
        elif self.fs.get_file_info(self.path).type == pafs.FileType.File:
            self.fs.delete_file(self.path)


@contextmanager
def atomic_path(path: str | os.PathLike[str], fs: pafs.FileSystem | None = None) -> Iterator[str]:
    """A temporary path in `path`'s folder to write the file to; renamed to `path` when the block ends,
    removed when it raises. `fs`: the pyarrow filesystem `path` is on; None for a local path."""
    target = AtomicFile(path, fs)
    try:
        yield target.path
        target.commit()
    except BaseException:
        target.abort()
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes, fs: pafs.FileSystem | None = None) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path, fs) as tmp:
        if fs is None:
            Path(tmp).write_bytes(data)
        else:
            with fs.open_output_stream(tmp) as out:
                out.write(data)


def write_text(path: str | os.PathLike[str], text: str, fs: pafs.FileSystem | None = None) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"), fs)


def write_table(
    path: str | os.PathLike[str], table: pa.Table, fs: pafs.FileSystem | None = None, **options: Any
) -> None:
    """Write `table` as a Parquet file to `path` atomically; `options` go to `pyarrow.parquet.write_table`."""
    with atomic_path(path, fs) as tmp:
        pq.write_table(table, tmp, filesystem=fs, **options)


def jsonable(value: Any) -> Any:
    """`value` as its JSON round trip: tuples become lists, numpy scalars Python numbers, anything else
    JSON cannot hold its `str`; so a document equals what reading it back gives."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
