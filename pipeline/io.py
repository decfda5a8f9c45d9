"""Files written whole or not at all, and values made JSON-safe.

Every file a reader may open while it is being made (cache shards, manifests, checkpoints, training state,
predictions, submissions, synthetic data) is written under a temporary name in its target folder and renamed
into place once complete, so the final name never holds a partial file; on failure the temporary file is
removed. A target is a local path (its folder is created) or a path on a pyarrow filesystem (local, S3, ...;
the folder must exist). A temporary name starts with `TMP_PREFIX` (hidden) and ends with `TMP_SUFFIX`, so
neither a listing of the folder nor a reader looking for the target's suffix takes it for a finished file.

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


@contextmanager
def atomic_path(path: str | os.PathLike[str], fs: pafs.FileSystem | None = None) -> Iterator[str]:
    """A temporary path in `path`'s folder to write the file to; renamed to `path` when the block ends,
    removed when it raises. `fs`: the pyarrow filesystem `path` is on; None for a local path."""
    if fs is None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        local = target.with_name(temporary_name(target.name))
        try:
            yield str(local)
            os.replace(local, target)
        except BaseException:
            local.unlink(missing_ok=True)
            raise
        return
    folder, _, name = str(path).rpartition("/")
    tmp = f"{folder}/{temporary_name(name)}"
    try:
        yield tmp
        fs.move(tmp, str(path))
    except BaseException:
        if fs.get_file_info(tmp).type == pafs.FileType.File:
            fs.delete_file(tmp)
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
