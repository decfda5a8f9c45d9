"""Cache spec: its hash, the differences named when a cache or a checkpoint was made with other settings."""

from __future__ import annotations

import pytest

from pipeline.cache.read import open_cache
from pipeline.cache.spec import cache_differences, make_spec, spec_differences, spec_hash
from pipeline.cache.write import CacheSpecError, CacheWriter
from tests.pipeline.cache.shards import SMALL, rows, spec


def test_other_settings_are_refused_with_the_differences_named(tmp_path):
    CacheWriter(str(tmp_path), spec()).write_subject("a", "a", rows(5)[0])
    with pytest.raises(CacheSpecError) as err:
        CacheWriter(str(tmp_path), spec(min_face=20, weights_hash="sha256:abc"))
    message = str(err.value)
    assert "faces.min_face_size: 40 -> 20" in message
    assert "weights_hash: 'random-init' -> 'sha256:abc'" in message
    assert "--rebuild" in message
    assert open_cache(str(tmp_path)).subjects() == ["a"]  # nothing touched

    rebuilt = CacheWriter(str(tmp_path), spec(min_face=20), rebuild=True)
    assert rebuilt.entries == {}
    cache = open_cache(str(tmp_path))
    assert cache.subjects() == [] and cache.spec["faces"]["min_face_size"] == 20


def test_hash_and_differences_ignore_the_version_and_the_weights_path():
    a = spec()
    b = dict(a, version="9.9.9", weights="/elsewhere/same.safetensors")
    assert spec_hash(a) == spec_hash(b) and spec_differences(a, b) == []
    c = spec(dtype="float16", min_face=20)
    assert spec_hash(c) != spec_hash(a)
    assert spec_differences(a, c) == ["faces.min_face_size: 40 -> 20"]
    assert make_spec(
        {"backbone": "x", "weights_hash": "h", "input_size": 224, "boundary": SMALL},
        "float16",
        {"sizes": (1, 2)},
    )["faces"] == {"sizes": [1, 2]}  # a spec equals its JSON round trip


def test_a_checkpoint_backbone_is_compared_with_the_cache_it_reads():
    cache = spec()
    backbone = {k: cache[k] for k in ("backbone", "weights_hash", "input_size")} | {"boundary": SMALL}
    assert cache_differences(backbone, cache) == []
    assert cache_differences(backbone, dict(cache, boundary={"s8": SMALL[0], "s16": SMALL[1]})) == []
    assert cache_differences(backbone | {"input_size": 256}, cache) == [
        "input size 256 px (checkpoint) vs input size 224 px (cache): extract a cache with --input-size 256, "
        "or train on this cache with --input-size 224"
    ]
    assert cache_differences(backbone, {k: v for k, v in cache.items() if k != "weights_hash"}) == [
        "weights_hash: 'random-init' vs (not recorded by the cache)"
    ]
