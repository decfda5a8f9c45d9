"""The extraction's crop stage for Ray Data (`--cache-kind crops`): face crops -> their compressed images.

Takes the place of the backbone stage when the cache stores crops: a thin wrapper over
`pipeline.cache.crops.encode_crops`. Rows are those of `jobs.extract.rows`.
"""

from __future__ import annotations

import time

import numpy as np

from pipeline.cache.crops import CropCodec, encode_crops


class CropStage:
    """Ray Data stage: replaces the `crops` of a batch by `crop`, each face crop's image.

    Input columns: `crops` (n, 3, S, S) uint8, `face` (n,) bool, any others (passed through).
    Output adds `crop` (n,) object (bytes; empty where no face) and `t_backbone` (seconds of encoding, per row: the
    column the backbone stage's time goes to, so the per-stage table reads the same).
    """

    def __init__(self, codec: CropCodec = CropCodec()):
        self.codec = codec

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        crops = batch.pop("crops")
        images = np.empty(len(crops), dtype=object)
        # b"" where no face: a column of bytes only, whatever the batch (all faceless included), for Ray's
        # blocks; the shard stores a null there (`pipeline.cache.schema.frames_table`)
        images[:] = [b or b"" for b in encode_crops(crops, batch["face"], self.codec)]
        batch["crop"] = images
        batch["t_backbone"] = np.full(len(crops), (time.perf_counter() - started) / max(len(crops), 1))
        return batch
