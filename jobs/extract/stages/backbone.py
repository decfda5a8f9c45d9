"""The extraction's backbone stage for Ray Data: face crops -> the maps the cache stores.

A thin wrapper over `pipeline.features.extract_maps` that builds the frozen backbone once per worker. Rows
are those of `jobs.extract.rows`.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from model.backbone import BackboneConfig, build_backbone
from pipeline.features import FeatureConfig, extract_maps


class BackboneStage:
    """Ray Data stage: adds the cached maps to a batch of crops and drops the crops.

    Input columns: `crops` (n, 3, S, S) uint8, `face` (n,) bool, any others (passed through).
    Output adds one column per cached map, named as the backbone's `cached_names` (N = 2: `s8`, `s16`;
    cfg.dtype) and `t_backbone` (seconds, the batch's time split over its rows).
    """

    def __init__(
        self,
        backbone: BackboneConfig,
        cfg: FeatureConfig = FeatureConfig(),
        device: str = "cpu",
        threads: int | None = None,  # torch intra-op threads (None: leave as is)
    ):
        if threads:
            torch.set_num_threads(threads)
        self.cfg = cfg
        self.backbone = build_backbone(backbone)
        self.backbone.frozen.to(torch.device(device))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        crops = batch.pop("crops")
        maps = extract_maps(crops, self.backbone, self.cfg, face=batch["face"])
        batch.update(zip(self.backbone.cached_names, maps, strict=True))
        n = len(crops)
        batch["t_backbone"] = np.full(n, (time.perf_counter() - started) / max(n, 1))
        return batch
