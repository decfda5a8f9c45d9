"""Cache layout: subject names encoded into file names, local and URI locations."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow.fs as pafs

from pipeline.cache.layout import decode_subject, encode_subject, resolve_location
from pipeline.cache.read import open_cache
from pipeline.cache.write import CacheWriter
from tests.pipeline.cache.shards import rows, spec


def test_subject_names_with_slashes_are_encoded(tmp_path):
    name = "p12/Visite_1/p12_Question_3_2023-04-01_Video.mp4"
    encoded = encode_subject(name)
    assert "/" not in encoded and decode_subject(encoded) == name
    assert decode_subject(encode_subject(".hidden %x")) == ".hidden %x"
    assert not encode_subject(".hidden").startswith(".")
    writer = CacheWriter(str(tmp_path), spec())
    writer.write_subject(name, "p12_Question_3", rows(5)[0])
    cache = open_cache(str(tmp_path))
    assert cache.subjects() == [name]
    assert cache.read(name).index.tolist() == [0, 1, 2, 3, 4]


def test_uri_location(tmp_path):
    uri = f"file://{tmp_path}/cache"
    writer = CacheWriter(uri, spec())
    table, _, maps, _ = rows(12)
    writer.write_subject("x_left", "x", table)
    assert (tmp_path / "cache" / "shards" / "x_left.parquet").is_file()
    cache = open_cache(uri)
    assert cache.video("x_left") == "x"
    np.testing.assert_array_equal(cache.read("x_left", 3, 6).maps[1], maps[1][3:6].astype(np.float16))
    # a pickled cache reopens itself (DataLoader workers)
    assert pickle.loads(pickle.dumps(cache)).read("x_left", 0, 2).index.tolist() == [0, 1]


def test_local_and_uri_locations_resolve_to_the_same_files(tmp_path):
    fs, root = resolve_location(f"file://{tmp_path}")
    assert isinstance(fs, pafs.LocalFileSystem) and root == str(tmp_path)
    assert resolve_location(str(tmp_path))[1] == str(tmp_path)
