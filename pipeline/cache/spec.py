"""The cache spec: every setting that decides what a cached row holds, its hash, and how two specs differ.

A cache records its spec in `cache.json` and in every shard (backbone, weights hash, input size, the number
of trainable blocks N and the names and shapes of the cached maps that follow from it, what a row stores
(`cache_kind`), their stored dtype, the normalisation of the crops, the face settings, the lwaffect
version). The normalisation is compared where it came from a weights file; timm's default for the model
name follows from the compared backbone name (and caches made before it was recorded hold that default).
Two specs with the same `spec_hash` make the same rows; `spec_differences` names what differs between two
caches' settings and `cache_differences` what differs between a checkpoint's backbone and the cache it is
to read. Fields added after the first caches were made (`LEGACY`) mean, where a spec lacks them, what
those caches held (N = 2, maps s8 and s16): an older cache keeps its hash and reads as before.

May import: model (the version, model.split: no torch), pipeline.io.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from model import __version__
from model.split import (
    DEFAULT_CACHE_KIND,
    DEFAULT_TRAINABLE_BLOCKS,
    LEGACY_CACHED,
    cached_names_of,
    trainable_blocks_of,
)
from pipeline.io import jsonable

MAP_NAMES = LEGACY_CACHED  # names of the cached maps (and their columns) of a spec that does not list them
# fields a spec lacks when made before they existed, with the value they then had: a spec holding that
# value hashes and compares as one without the field
LEGACY = {
    "trainable_blocks": DEFAULT_TRAINABLE_BLOCKS,
    "cached_names": list(LEGACY_CACHED),
    "cache_kind": DEFAULT_CACHE_KIND,
}
SPEC_FIELDS_IGNORED = (
    "version",
    "weights",
)  # recorded, not compared: a new release reads old caches; a moved
# weights file with the same hash makes the same maps
CACHE_FIELDS = (
    "backbone",
    "weights_hash",
    "input_size",
    "trainable_blocks",
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

    `backbone` is `MultiScaleBackbone.spec()` (backbone, weights_hash, input_size, trainable_blocks,
    cached_names, boundary: the cached shapes); `weights` (the weights file's path) is recorded for
    reference, its hash is what is compared. `crops` (`pipeline.cache.crops.CropCodec.spec()`) makes it a
    crop cache's spec: `cache_kind` "crops" and the codec (its rows hold the crops that enter the frozen
    part, which the trainer runs on the fly). A map cache records `cache_kind` "maps", its LEGACY value, so
    its hash is that of a spec without the field: older caches keep theirs.
    """
    names = list(cached_names_of(backbone))
    boundary = [[int(d) for d in shape] for shape in backbone["boundary"]]
    if len(boundary) != len(names):
        raise ValueError(f"expected {len(names)} cached maps ({', '.join(names)}), got shapes {boundary}")
    return {
        "backbone": str(backbone["backbone"]),
        "pretrained": bool(pretrained),
        "weights": None if weights is None else str(weights),
        "weights_hash": str(backbone["weights_hash"]),
        "input_size": int(backbone["input_size"]),
        "trainable_blocks": trainable_blocks_of(backbone),  # N: the last N backbone blocks train
        "cached_names": names,  # the cached maps (and their columns), in the frozen part's order
        "boundary": boundary,  # [[C, H, W], ...] in cached_names order
        "cache_kind": DEFAULT_CACHE_KIND,  # what a row stores: the frozen part's maps
        # mean, std and source (file or timm) of the crops' normalisation
        "normalization": jsonable(backbone.get("normalization")),
        "dtype": dtype,
        "faces": jsonable(faces),  # a spec equals its JSON round trip
        "version": __version__,
    } | ({"cache_kind": "crops", "crops": jsonable(crops)} if crops is not None else {})


def map_names(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The cached maps' names (their shard columns) of a cache spec, in the order of its `boundary`."""
    return cached_names_of(spec)


def _compared(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The compared part of a spec: timm's default normalisation follows from the backbone name, and a field
    at its LEGACY value counts as absent."""
    norm = spec.get("normalization")
    default = not isinstance(norm, Mapping) or norm.get("source", "timm") == "timm"
    return {
        k: v
        for k, v in spec.items()
        if k not in SPEC_FIELDS_IGNORED
        and not (k == "normalization" and default)
        and not (k in LEGACY and v == LEGACY[k])
    }


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A short hash of the compared part of a spec."""
    compared = _compared(spec)
    return hashlib.sha256(json.dumps(compared, sort_keys=True).encode()).hexdigest()[:16]


def spec_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable `setting: old -> new` lines for every compared setting that differs."""
    lines = []
    absent = {} if prefix else LEGACY  # a top-level field a spec lacks has its legacy value
    if not prefix:
        old, new = _compared(old), _compared(new)
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, absent.get(key)), new.get(key, absent.get(key))
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines += spec_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines


class SpecMismatch(ValueError):
    """Maps made by a backbone other than the one the cache's spec describes (a stage worker's check)."""


def _boundary(value: Any) -> Any:
    # the cache records {"s8": [C, H, W], "s16": [...]}, the model [[C, H, W], ...]: compare the shapes
    if isinstance(value, Mapping):
        value = list(value.values())
    try:
        return [[int(d) for d in shape] for shape in value]
    except TypeError:
        return value


def cache_differences(backbone: Mapping[str, Any], cache_spec: Mapping[str, Any]) -> list[str]:
    """`field: checkpoint value vs cache value` for every field of CACHE_FIELDS that differs.

    A different N or input size is said with the flag that sets it (the cached shapes follow from both)."""
    lines, cut = [], []
    for key, what, unit in (
        ("trainable_blocks", "trainable blocks N = ", ""),
        ("input_size", "input size ", " px"),
    ):
        mine, theirs = backbone.get(key, LEGACY.get(key)), cache_spec.get(key, LEGACY.get(key))
        flag = "--" + key.replace("_", "-")
        if theirs is None:
            lines.append(f"{key}: {mine!r} vs (not recorded by the cache)")
        elif mine != theirs:
            cut.append(f"{what}{mine}{unit} (checkpoint) vs {what}{theirs}{unit} (cache): extract a cache with "
                       f"{flag} {mine}, or train on this cache with {flag} {theirs}")  # fmt: skip
    for key in CACHE_FIELDS:
        if key in ("trainable_blocks", "input_size") or (key == "boundary" and cut):
            continue
        mine, theirs = backbone.get(key), cache_spec.get(key)
        if key == "boundary":
            mine, theirs = _boundary(mine), _boundary(theirs)
        if key not in cache_spec:
            lines.append(f"{key}: {mine!r} vs (not recorded by the cache)")
        elif mine != theirs:
            lines.append(f"{key}: {mine!r} vs {theirs!r}")
    mine, theirs = backbone.get("normalization"), cache_spec.get("normalization")
    if isinstance(mine, Mapping) and isinstance(theirs, Mapping):  # both record it: compare mean and std
        pair = [[[float(v) for v in n.get(k, ())] for k in ("mean", "std")] for n in (mine, theirs)]
        if pair[0] != pair[1]:
            lines.append(f"normalization (mean, std): {pair[0]!r} vs {pair[1]!r}")
    return cut + lines
