"""Atomic writes leave the whole file or the old one, never a partial file or a temporary; JSON-safe values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.io import (
    TMP_PREFIX,
    atomic_path,
    is_temporary,
    jsonable,
    temporary_name,
    write_bytes,
    write_table,
    write_text,
)

TABLE = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})


@pytest.fixture(params=["local", "filesystem"])
def target(request, tmp_path):
    """(path, fs) of a file to write: a local path, or a path on a pyarrow filesystem."""
    if request.param == "local":
        return tmp_path / "sub" / "file.bin", None
    (tmp_path / "sub").mkdir()
    return f"{tmp_path}/sub/file.bin", pafs.LocalFileSystem()


def test_writes_text_bytes_and_tables(target, tmp_path):
    path, fs = target
    write_text(path, "héllo\n", fs)
    assert (tmp_path / "sub" / "file.bin").read_text(encoding="utf-8") == "héllo\n"
    write_bytes(path, b"\x00\x01", fs)
    assert (tmp_path / "sub" / "file.bin").read_bytes() == b"\x00\x01"
    write_table(path, TABLE, fs, compression="zstd")
    assert pq.read_table(tmp_path / "sub" / "file.bin").equals(TABLE)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["file.bin"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(target, tmp_path):
    path, fs = target
    write_text(path, "old", fs)
    with pytest.raises(OSError, match="disk full"), atomic_path(path, fs) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half of the new")
        raise OSError("disk full")
    assert (tmp_path / "sub" / "file.bin").read_text() == "old"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["file.bin"]


def test_a_failed_first_write_leaves_nothing(target, tmp_path):
    path, fs = target
    with pytest.raises(pa.ArrowException, match="compression"):
        write_table(path, TABLE, fs, compression="no-such-codec")
    assert list((tmp_path / "sub").iterdir()) == []


def test_the_file_appears_only_when_complete(target, tmp_path):
    path, fs = target
    final = tmp_path / "sub" / "file.bin"
    with atomic_path(path, fs) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"part")
            assert not final.exists()
            f.write(b" and the rest")
        assert not final.exists()
        assert is_temporary(tmp.rpartition("/")[2])
    assert final.read_bytes() == b"part and the rest"


def test_temporary_names_are_hidden_and_never_end_like_the_target():
    name = temporary_name("shard.parquet")
    assert name.startswith(TMP_PREFIX) and name.startswith(".") and not name.endswith(".parquet")
    assert "shard.parquet" in name and is_temporary(name) and not is_temporary("shard.parquet")
    assert temporary_name("a") != temporary_name("a")


def test_jsonable_gives_the_json_round_trip():
    value = {"t": (1, 2), "f": np.float32(0.5), "i": np.int64(3), "nested": [{"p": np.bool_(True)}]}
    assert jsonable(value) == {"t": [1, 2], "f": 0.5, "i": 3, "nested": [{"p": True}]}
    assert jsonable({"path": object}) == {"path": str(object)}
