"""Specs and rows of small shards for the cache tests."""

from __future__ import annotations

import numpy as np

from pipeline.cache.schema import frame_schema, frames_table
from pipeline.cache.spec import make_spec

SMALL = [[4, 3, 3], [6, 2, 2]]  # small boundary shapes keep these tests fast
FULL = [[64, 28, 28], [96, 14, 14]]


def spec(boundary=SMALL, dtype="float16", min_face=40, weights_hash="random-init"):
    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": weights_hash, "input_size": 224}
    return make_spec(backbone | {"boundary": boundary}, dtype, {"mode": "detect", "min_face_size": min_face})


def rows(n, boundary=SMALL, seed=0, start=0):
    rng = np.random.default_rng(seed)
    face = rng.random(n) > 0.2
    maps = [
        rng.standard_normal((n, *shape)).astype(np.float32) * face[:, None, None, None] for shape in boundary
    ]
    box = rng.uniform(0, 400, (n, 4))
    source = np.where(face, "detected", "none")
    table = frames_table(
        frame_schema(boundary),
        np.arange(start, start + n),
        face,
        box,
        rng.random(n),
        rng.uniform(0, 400, (n, 5, 2)),
        source,
        maps,
    )
    return table, face, maps, box
