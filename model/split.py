"""Where the backbone is cut: which blocks are frozen, which maps the cache holds, which blocks train.

Pure Python (no torch), so that the cache code can read a spec without loading torch. MobileNetV4 in timm
is a stem and a sequence of blocks (5 for `mobilenetv4_conv_small`); the map at stride 8 comes out after
block 1, stride 16 after block 2 and stride 32 after block 4 (`BlockSplit.map_after` counts the blocks
run: 2, 3, 5). With N trainable blocks (`BackboneConfig.trainable_blocks`) the last N blocks train with
the temporal model and the rest is frozen. The cache holds what enters the first trainable block plus
every map among s8, s16, s32 that the frozen part makes (the registered configs read all three):

  N = 0: s8, s16, s32            N = 1: s8, s16, block3 (128x7x7 at 224 px)     N = 2: s8, s16 (today)
  N = 3: s8                      N = 4: block0 (32x56x56)                       N = 5: stem (32x112x112)

A cached map that is not one of s8, s16, s32 is named after the part that makes it (`stem`, `blockK`).
Specs and checkpoints made before N was a setting record neither N nor the cached names: they mean N = 2
and ("s8", "s16"), as the `*_of` readers here say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAP_NAMES = ("s8", "s16", "s32")  # the maps the TAM reads; a level's `source` indexes this
DEFAULT_TRAINABLE_BLOCKS = 2  # blocks 3 and 4 of mobilenetv4_conv_small: the boundary before N was a setting
LEGACY_CACHED = ("s8", "s16")  # what a cache without `cached_names` holds
DEFAULT_CACHE_KIND = (
    "maps"  # what a cache stores per frame when its spec does not say (pipeline.cache.crops.CACHE_KINDS)
)


@dataclass(frozen=True)
class BlockSplit:
    """The cut of a backbone of `blocks` blocks with `trainable` trainable ones."""

    blocks: int  # number of blocks after the stem
    map_after: tuple[int, int, int]  # blocks run before s8, s16 and s32 come out (2, 3, 5)
    trainable: int = DEFAULT_TRAINABLE_BLOCKS  # the last N blocks train

    def __post_init__(self) -> None:
        if not 0 <= self.trainable <= self.blocks:
            raise ValueError(
                f"trainable blocks must be 0 to {self.blocks} for this backbone ({self.blocks} blocks), "
                f"got {self.trainable}"
            )

    @property
    def first(self) -> int:
        """Index of the first trainable block (= blocks in the frozen part)."""
        return self.blocks - self.trainable

    @property
    def cached_positions(self) -> tuple[int, ...]:
        """Blocks run before each cached map comes out (0: the stem's output), in network order."""
        positions = {a for a in self.map_after if a <= self.first}
        if self.trainable:
            positions.add(self.first)  # what enters the first trainable block
        return tuple(sorted(positions))

    def name_at(self, position: int) -> str:
        """The name of the map after `position` blocks: s8/s16/s32, else `stem` or `blockK`."""
        if position in self.map_after:
            return MAP_NAMES[self.map_after.index(position)]
        return "stem" if position == 0 else f"block{position - 1}"

    @property
    def cached_names(self) -> tuple[str, ...]:
        """Names of the cached maps in the order of `MultiScaleBackbone.frozen`'s tuple."""
        return tuple(self.name_at(p) for p in self.cached_positions)

    def tail_blocks_for(self, sources: set[int] | frozenset[int]) -> int:
        """Trainable blocks a model reading maps `sources` (indices into MAP_NAMES) needs to run."""
        needed = [self.map_after[k] for k in sources if self.map_after[k] > self.first]
        return max(needed, default=self.first) - self.first


def trainable_blocks_of(spec: Mapping[str, Any]) -> int:
    """N recorded by a cache spec or a checkpoint's backbone spec (older ones: 2)."""
    return int(spec.get("trainable_blocks", DEFAULT_TRAINABLE_BLOCKS))


def cached_names_of(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The cached map names recorded by a spec (older ones: s8, s16)."""
    return tuple(spec.get("cached_names", LEGACY_CACHED))


def cache_kind_of(spec: Mapping[str, Any]) -> str:
    """What a cache stores per frame (older ones: maps)."""
    return str(spec.get("cache_kind", DEFAULT_CACHE_KIND))
