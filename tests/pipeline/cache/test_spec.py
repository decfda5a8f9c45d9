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


def test_normalisation_from_a_file_is_part_of_the_identity():
    base = {"backbone": "x", "weights_hash": "sha256:same", "input_size": 224, "boundary": SMALL}
    norm = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "source": "file"}
    other = dict(norm, mean=[0.4, 0.5, 0.5])
    a = make_spec(base | {"normalization": norm}, "float16", {})
    b = make_spec(base | {"normalization": other}, "float16", {})
    assert a["normalization"] == norm
    assert spec_hash(a) != spec_hash(b)
    assert spec_differences(a, b) == ["normalization.mean: [0.5, 0.5, 0.5] -> [0.4, 0.5, 0.5]"]
    assert cache_differences(base | {"normalization": other}, a) == [
        "normalization (mean, std): [[0.4, 0.5, 0.5], [0.5, 0.5, 0.5]] vs [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]"
    ]
    # timm's default follows from the backbone name: a cache made before the spec recorded it still fits
    default = make_spec(base | {"normalization": dict(norm, source="timm")}, "float16", {})
    older = {k: v for k, v in default.items() if k != "normalization"}
    assert spec_hash(default) == spec_hash(older) and spec_differences(older, default) == []
    assert spec_hash(default) != spec_hash(a)
