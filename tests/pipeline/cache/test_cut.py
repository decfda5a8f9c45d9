"""The cache at any number of trainable blocks: the spec names the cached maps, the shards hold one column
each, and a cache made before N was a setting (no N, no names) reads and resumes as N = 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cache.layout import SPEC_FILE
from pipeline.cache.read import complete_shards, open_cache
from pipeline.cache.schema import frame_schema, frames_table
from pipeline.cache.spec import LEGACY, make_spec, map_names, spec_differences, spec_hash
from pipeline.cache.write import CacheSpecError, CacheWriter
from tests.pipeline.cache.shards import SMALL, rows, spec

BACKBONE = {"backbone": "mobilenetv4_conv_small", "weights_hash": "random-init", "input_size": 224}


def cut_spec(n: int, names: list[str], shapes: list[list[int]]) -> dict:
    backbone = BACKBONE | {"trainable_blocks": n, "cached_names": names, "boundary": shapes}
    return make_spec(backbone, "float16", {"mode": "detect"})


def legacy(s: dict) -> dict:
    """The spec as lwaffect wrote it before N was a setting."""
    return {k: v for k, v in s.items() if k not in LEGACY}


def test_the_spec_records_n_the_cached_maps_and_the_kind():
    s = cut_spec(4, ["block0"], [[2, 4, 4]])
    assert (s["trainable_blocks"], s["cached_names"], s["cache_kind"]) == (4, ["block0"], "maps")
    assert map_names(s) == ("block0",)
    assert "trainable_blocks: 2 -> 4" in spec_differences(spec(), s)
    with pytest.raises(ValueError, match=r"expected 1 cached maps \(block0\)"):
        cut_spec(4, ["block0"], [[2, 4, 4], [1, 1, 1]])


def test_an_older_spec_hashes_and_compares_as_n_2():
    new = spec()
    old = legacy(new)
    assert "trainable_blocks" in new and "trainable_blocks" not in old
    assert spec_hash(old) == spec_hash(new) and spec_differences(old, new) == []
    assert map_names(old) == ("s8", "s16")
    three = cut_spec(3, ["s8"], [SMALL[0]])
    assert spec_hash(three) != spec_hash(old)
    assert "trainable_blocks: 2 -> 3" in spec_differences(old, three)


@pytest.mark.parametrize(
    "n,names,shapes", [(4, ["block0"], [[2, 4, 4]]), (1, ["s8", "s16", "block3"], [[4, 3, 3], [6, 2, 2], [3, 1, 1]])]
)  # fmt: skip
def test_shards_hold_one_column_per_cached_map(tmp_path, n, names, shapes):
    s = cut_spec(n, names, shapes)
    rng = np.random.default_rng(0)
    k = 10
    maps = [rng.standard_normal((k, *shape)).astype(np.float16) for shape in shapes]
    table = frames_table(frame_schema(shapes, "float16", names), np.arange(k), np.ones(k, bool),
                         np.zeros((k, 4)), np.ones(k), np.zeros((k, 5, 2)), ["detected"] * k, maps)  # fmt: skip
    CacheWriter(str(tmp_path), s).write_subject("a", "a", table)
    cache = open_cache(str(tmp_path))
    assert cache.map_names == tuple(names)
    got = cache.read("a")
    for a, b in zip(got.maps, maps, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CacheSpecError, match="trainable_blocks"):
        CacheWriter(str(tmp_path), spec())  # a cache of another N asks for --rebuild


def test_a_cache_made_before_n_reads_and_resumes_as_n_2(tmp_path):
    old = legacy(spec())
    table, _, maps, _ = rows(12)
    CacheWriter(str(tmp_path), old).write_subject("a", "a", table)
    assert "trainable_blocks" not in json.loads((tmp_path / SPEC_FILE).read_text())
    cache = open_cache(str(tmp_path))
    assert cache.map_names == ("s8", "s16")
    for a, b in zip(cache.read("a").maps, maps, strict=True):
        np.testing.assert_array_equal(a, b.astype(np.float16))
    writer = CacheWriter(str(tmp_path), spec())  # today's extraction at N = 2: no rebuild, the shard reused
    assert writer.is_complete("a") and list(complete_shards(writer.fs, writer.root, spec_hash(spec())))
