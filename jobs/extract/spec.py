"""The extraction's cache spec, and who describes the backbone in it.

`cache_spec(cfg)` is the spec of a configuration: the backbone's part (`model.backbone.MultiScaleBackbone.spec`)
with the face, feature and crop settings (`pipeline.cache.spec.make_spec`). The backbone's part is known on
the driver without building the backbone where this machine remembers it (`pipeline.cache.backbone_spec`).
Where it does not, on a machine's first run, building it would cost the driver torch's and timm's imports
and the model, about 2 s of a 2-core machine's CPU while Ray and the stage workers start: `known_spec` then
says None, and the backbone workers, which build the backbone anyway, describe it (`jobs.extract.stages`:
the backbone stage sends its spec with its rows, the write stage adopts it before the first shard opens,
the driver remembers it). A crop cache (no backbone stage) and hub weights (whose build tells, before any
stage starts, that the hub cannot be reached) are described on the driver.

May import: jobs.extract.config, pipeline.cache (backbone_spec, spec).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from jobs.extract.config import ExtractConfig
from pipeline.cache.backbone_spec import backbone_spec, memo_key, remembered
from pipeline.cache.spec import make_spec


def cache_spec(cfg: ExtractConfig, backbone: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cache spec of `cfg`, with `backbone` as the backbone's spec (None: the remembered one, else built
    here: `pipeline.cache.backbone_spec`)."""
    return spec_with(cfg)(backbone_spec(cfg.backbone) if backbone is None else backbone)


def spec_with(cfg: ExtractConfig) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The cache spec of `cfg` as a function of the backbone's spec; picklable, and what it takes to call it
    is `pipeline.cache.spec` alone (the write stage's, where the backbone workers describe the backbone)."""
    return partial(
        make_spec,
        dtype=cfg.features.dtype,
        faces=cfg.faces.spec() | {"subject": cfg.subject},
        pretrained=cfg.backbone.pretrained,
        weights=cfg.backbone.weights,
        crops=cfg.crops.spec() if cfg.kind == "crops" else None,
    )


def known_spec(cfg: ExtractConfig) -> dict[str, Any] | None:
    """The cache spec of `cfg` as the driver knows it before any stage starts; None where the backbone
    workers are to describe the backbone (not remembered here, and neither a crop cache nor hub weights)."""
    if cfg.kind == "crops" or memo_key(cfg.backbone) is None:
        return cache_spec(cfg)
    backbone = remembered(cfg.backbone)  # read once: `cache_spec` would read the memo again
    return None if backbone is None else cache_spec(cfg, backbone)
