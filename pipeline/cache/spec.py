"""The cache spec: every setting that decides what a cached row holds, its hash, and how two specs differ.

A cache records its spec in `cache.json` and in every shard (backbone, weights hash, input size, the shapes of
the boundary maps, their stored dtype, the face settings, the lwaffect version). Two specs with the same
`spec_hash` make the same rows; `spec_differences` names what differs between two caches' settings and
`cache_differences` what differs between a checkpoint's backbone and the cache it is to read.

May import: model (the version), pipeline.io.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from model import __version__
from pipeline.io import jsonable

MAP_NAMES = ("s8", "s16")  # names of the boundary maps (and of their cache columns), in the backbone's order
SPEC_FIELDS_IGNORED = (
    "version",
    "weights",
)  # recorded, not compared: a new release reads old caches; a moved
# weights file with the same hash makes the same maps
CACHE_FIELDS = (
    "backbone",
    "weights_hash",
    "input_size",
    "boundary",
)  # what a checkpoint's backbone must match


def make_spec(
    backbone: Mapping[str, Any],
    dtype: str,
    faces: Mapping[str, Any],
    pretrained: bool = False,
    weights: str | None = None,
    crops: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The cache spec: every setting that decides what a cached row holds.

    `backbone` is `MultiScaleBackbone.spec()` (backbone, weights_hash, input_size, boundary shapes);
    `weights` (the weights file's path) is recorded for reference, its hash is what is compared.
    `crops` (`pipeline.cache.crops.CropCodec.spec()`) makes it a crop cache's spec: `cache_kind` "crops"
    and the codec; a map cache's spec records no kind (older caches neither), so its hash is unchanged.
    """
    boundary = [[int(d) for d in shape] for shape in backbone["boundary"]]
    if len(boundary) != len(MAP_NAMES):
        raise ValueError(f"expected {len(MAP_NAMES)} boundary maps, got {boundary}")
    return {
        "backbone": str(backbone["backbone"]),
        "pretrained": bool(pretrained),
        "weights": None if weights is None else str(weights),
        "weights_hash": str(backbone["weights_hash"]),
        "input_size": int(backbone["input_size"]),
        "boundary": boundary,  # [[C, H, W], ...] in MAP_NAMES order
        "dtype": dtype,
        "faces": jsonable(faces),  # a spec equals its JSON round trip
        "version": __version__,
    } | ({"cache_kind": "crops", "crops": jsonable(crops)} if crops is not None else {})


def spec_cache_kind(spec: Mapping[str, Any]) -> str:
    """What a cache holds: "maps" (the frozen part's maps; also a spec that records no kind) or "crops"."""
    return str(spec.get("cache_kind", "maps"))


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A short hash of the compared part of a spec."""
    compared = {k: v for k, v in spec.items() if k not in SPEC_FIELDS_IGNORED}
    return hashlib.sha256(json.dumps(compared, sort_keys=True).encode()).hexdigest()[:16]


def spec_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable `setting: old -> new` lines for every compared setting that differs."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key in SPEC_FIELDS_IGNORED:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines += spec_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines


def _boundary(value: Any) -> Any:
    # the cache records {"s8": [C, H, W], "s16": [...]}, the model [[C, H, W], ...]: compare the shapes
    if isinstance(value, Mapping):
        value = list(value.values())
    try:
        return [[int(d) for d in shape] for shape in value]
    except TypeError:
        return value


def cache_differences(backbone: Mapping[str, Any], cache_spec: Mapping[str, Any]) -> list[str]:
    """`field: checkpoint value vs cache value` for every field of CACHE_FIELDS that differs."""
    lines = []
    for key in CACHE_FIELDS:
        mine, theirs = backbone.get(key), cache_spec.get(key)
        if key == "boundary":
            mine, theirs = _boundary(mine), _boundary(theirs)
        if key not in cache_spec:
            lines.append(f"{key}: {mine!r} vs (not recorded by the cache)")
        elif mine != theirs:
            lines.append(f"{key}: {mine!r} vs {theirs!r}")
    return lines
