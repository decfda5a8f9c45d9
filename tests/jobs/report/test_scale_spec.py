"""The big run of `jobs.report.scale` gets a map cache of one-value maps, from a map cache or a crop cache
(whose crops the report never reads): the spec its writer and its frames table agree on."""

from __future__ import annotations

import pytest

from jobs.report.scale import big_cache_spec
from pipeline.cache.crops import CropCodec
from pipeline.cache.schema import frame_schema, shard_schema
from pipeline.cache.spec import make_spec, map_names


@pytest.mark.parametrize("crops", [None, CropCodec().spec()])
def test_the_big_runs_cache_is_a_map_cache_of_the_same_maps(crops):
    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": "random-init", "input_size": 112,
                "trainable_blocks": 5, "cached_names": ["stem"], "boundary": [[32, 56, 56]]}  # fmt: skip
    spec = make_spec(backbone, "float16", {"mode": "detect"}, crops=crops)
    big = big_cache_spec(spec)
    assert big["cache_kind"] == "maps" and "crops" not in big and map_names(big) == ("stem",)
    assert big["trainable_blocks"] == 5 and big["input_size"] == 112  # the run's settings, recorded
    assert shard_schema(big) == frame_schema([[1, 1, 1]], "float16", ["stem"])  # what scale_run writes
