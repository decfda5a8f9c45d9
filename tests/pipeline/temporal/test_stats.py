"""Per-channel statistics of the cached maps over face frames (what the model standardises with)."""

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.temporal.stats import map_statistics


class FakeCache:
    def __init__(self, shards):
        self.shards = shards
        self.reads: list[str] = []

    def read(self, subject):
        self.reads.append(subject)
        return self.shards[subject]


def shard(rng, frames, faceless):
    face = np.ones(frames, bool)
    face[faceless] = False
    maps = (rng.normal(2.0, 3.0, (frames, 4, 6, 6)).astype(np.float16),
            rng.normal(-1.0, 0.5, (frames, 5, 3, 3)).astype(np.float16))  # fmt: skip
    for m in maps:
        m[~face] = 0  # faceless frames are zeros in the cache
    return SimpleNamespace(face=face, maps=maps)


def test_statistics_over_face_frames_only():
    rng = np.random.default_rng(0)
    shards = {"a": shard(rng, 10, [2, 3]), "b": shard(rng, 7, [0]), "c": shard(rng, 5, [0, 1, 2, 3, 4])}
    stats = map_statistics(FakeCache(shards), ["a", "b", "c"])
    for k, (mean, std) in enumerate(stats):
        pooled = np.concatenate([s.maps[k][s.face].astype(np.float64) for s in shards.values()])
        np.testing.assert_allclose(mean.numpy(), pooled.mean(axis=(0, 2, 3)), rtol=1e-5)
        np.testing.assert_allclose(std.numpy(), pooled.std(axis=(0, 2, 3)), rtol=1e-4)
    assert [len(m) for m, _ in stats] == [4, 5]


def test_a_spread_of_subjects_is_read_and_no_face_is_an_error():
    rng = np.random.default_rng(1)
    names = [f"s{i}" for i in range(10)]
    cache = FakeCache({n: shard(rng, 3, []) for n in names})
    map_statistics(cache, names, max_subjects=3)
    assert cache.reads == ["s0", "s4", "s9"]
    with pytest.raises(ValueError, match="no face frame"):
        map_statistics(FakeCache({"x": shard(rng, 3, [0, 1, 2])}), ["x"])
