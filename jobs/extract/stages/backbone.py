"""The extraction's backbone stage for Ray Data: face crops -> the maps the cache stores.

A thin wrapper over `pipeline.features.extract_maps` that builds the frozen backbone once per worker, with its
BatchNorms folded into the convolutions (`model.fold`: the same maps within float rounding). Rows
are those of `jobs.extract.rows`. Given the cache's spec, a worker checks that the backbone it built is the
one the spec describes: the driver's spec may come from the machine's memo (`pipeline.cache.backbone_spec`)
and, on a cluster, the weights file is read on every node, so a file changed since or another copy on a
node would otherwise fill the cache with maps its spec does not describe. Without the spec (a machine's
first run: `jobs.extract.spec`), the worker describes its backbone instead, with every row it sends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from jobs.extract.rows import SPEC_COLUMN
from jobs.extract.runtime import node_address
from model.backbone import BackboneConfig, build_backbone
from pipeline.cache.spec import SpecMismatch, cache_differences
from pipeline.features import FeatureConfig, extract_maps


class BackboneStage:
    """Ray Data stage: adds the cached maps to a batch of crops and drops the crops.

    Input columns: `crops` (n, 3, S, S) uint8, `face` (n,) bool, any others (passed through).
    Output adds one column per cached map, named as the backbone's `cached_names` (N = 2: `s8`, `s16`;
    cfg.dtype), `t_backbone` (seconds, the batch's time split over its rows) and, without `expect`,
    `SPEC_COLUMN`: the backbone's spec as JSON, for the write stage to adopt.
    """

    def __init__(
        self,
        backbone: BackboneConfig,
        cfg: FeatureConfig = FeatureConfig(),
        device: str = "cpu",
        threads: int | None = None,  # torch intra-op threads (None: leave as is)
        expect: Mapping[str, Any] | None = None,  # the cache's spec, which the built backbone must match
    ):
        if threads:
            torch.set_num_threads(threads)
        self.cfg = cfg
        self.backbone = build_backbone(backbone)
        self.described = None  # where the driver had no spec: this backbone's, sent with every row
        if expect is not None:
            check_spec(self.backbone.spec(), expect, backbone.weights)
        else:
            self.described = json.dumps(self.backbone.spec(), sort_keys=True)
        self.backbone.frozen, _ = self.backbone.folded_frozen()  # the same maps within float rounding, sooner
        self.backbone.frozen.to(torch.device(device))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        crops = batch.pop("crops")
        maps = extract_maps(crops, self.backbone, self.cfg, face=batch["face"])
        batch.update(zip(self.backbone.cached_names, maps, strict=True))
        n = len(crops)
        if self.described is not None:
            batch[SPEC_COLUMN] = np.full(n, self.described, dtype=object)
        batch["t_backbone"] = np.full(n, (time.perf_counter() - started) / max(n, 1))
        return batch


def check_spec(built: Mapping[str, Any], expect: Mapping[str, Any], weights: str | None) -> None:
    """Raise `SpecMismatch`, naming the weights file and this node, where the backbone spec `built` differs
    from the cache spec `expect` in anything a cached map follows from."""
    differences = cache_differences(built, expect)
    if differences:
        source = f"weights file {weights}" if weights else "backbone"
        node = node_address()
        where = "this machine" if node == "local" else f"node {node}"
        raise SpecMismatch(
            f"the {source} read on {where} does not make the maps the cache's spec describes "
            f"({'; '.join(differences)}; the value on {where} first): the file changed after the driver "
            "described the run, or this node holds another copy. Give every node the same file and rerun."
        )
