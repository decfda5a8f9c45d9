"""Named model configs and the builder: `build_model("tam_s1", "au", BackboneConfig())`.

The seed paper's TAM variants: one mixer level on the stride-32 map (`tam_s1`, its best AU result), two on
the stride-16 and stride-32 maps (`tam_s2`) and three on all maps (`tam_s3`); 4-frame tubelets, width 256.

Tubelet sizes follow the map sizes: the registered levels give no patch (`LevelConfig.patch=None`), and
`build_model` sets each level's patch to the divisor of its map side that cuts it into about 7 cells
(`model.tam.auto_patch`), the seed's 7x7 tubelets per frame. At 224 px that is 4x4, 2x2 and 1x1 cells of
the 28x28, 14x14 and 7x7 maps; at 112 px (`--input-size 112`) 2x2 and 1x1 cells of the 14x14 and 7x7 maps
and 1x1 of the 4x4 stride-32 map (4x4 tubelets). The checkpoint records the patches chosen. A map that no
patch cuts into 3 to 14 cells a side (a prime side above 14, say, at an unusual input size), or a level
whose fixed patch does not divide its map, is a ValueError naming the config, the level, the map and what
to change (another input size, or a patch for that level).

`tam_local` is for cues small and fixed on the face (action units): one level on the stride-8 map, where
a mark of a few pixels still covers a cell, whose frame vector reads each of the 7x7 places with its own
weights instead of averaging them (`LevelConfig.pool`). It needs no tail, so it trains several times faster.
On the learnability set it is the one config that learns the AU marks (README, Training recipes).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from model.affect import AffectModel, ModelConfig
from model.backbone import BackboneConfig, MultiScaleBackbone, build_backbone
from model.split import MAP_NAMES
from model.tam import CELL_RANGE, LevelConfig, auto_patch

S8 = LevelConfig(source=0)  # 64x28x28 map, 4x4-cell tubelets at 224 px
S16 = LevelConfig(source=1)  # 96x14x14 map, 2x2-cell tubelets at 224 px
S32 = LevelConfig(source=2)  # 960x7x7 map (the tail's output at N >= 1), one-cell tubelets
S8_LOCAL = LevelConfig(source=0, pool="position")  # the 28x28 map, each of the 7x7 places read

MODEL_CONFIGS: dict[str, ModelConfig] = {
    "tam_s1": ModelConfig("tam_s1", (S32,), description="one mixer level on the 7x7 map"),
    "tam_s2": ModelConfig("tam_s2", (S16, S32), description="two mixer levels on the 14x14 and 7x7 maps"),
    "tam_s3": ModelConfig("tam_s3", (S8, S16, S32), description="three mixer levels on the 28/14/7 maps"),
    "tam_local": ModelConfig(
        "tam_local", (S8_LOCAL,), description="one mixer level on the 28x28 map, read per place (AU)"
    ),
}


def get_config(name: str) -> ModelConfig:
    """The registered config called `name`, or a ValueError listing the known ones."""
    try:
        return MODEL_CONFIGS[name]
    except KeyError:
        raise ValueError(
            f"unknown model config {name!r}; known configs: {', '.join(MODEL_CONFIGS)}"
        ) from None


def resolve_patches(
    config: ModelConfig, map_shapes: tuple[tuple[int, ...], ...], input_size: int
) -> ModelConfig:
    """`config` with every level's patch set for the maps (s8, s16, s32 shapes) of its backbone."""
    levels = []
    for k, level in enumerate(config.levels):
        _, height, width = map_shapes[level.source]
        where = (f"model config {config.name!r}, level {k} ({MAP_NAMES[level.source]}: a {height}x{width} map "
                 f"at input size {input_size})")  # fmt: skip
        if level.patch is None:
            patch = auto_patch(height, width)
            if patch is None:
                raise ValueError(
                    f"{where}: no tubelet side cuts it into {CELL_RANGE[0]} to {CELL_RANGE[1]} cells; use "
                    "--input-size 112 or 224, or give the level a patch (LevelConfig.patch)"
                )
            level = dataclasses.replace(level, patch=patch)
        elif height % level.patch or width % level.patch:
            raise ValueError(
                f"{where}: patch {level.patch} does not divide it; give the level a patch that divides "
                f"{height} and {width}, or none (it then follows the map)"
            )
        levels.append(level)
    return dataclasses.replace(config, levels=tuple(levels))


def build_model(
    config_name: str,
    task: str,
    backbone_cfg: BackboneConfig | None = None,
    *,
    backbone: MultiScaleBackbone | None = None,
    **overrides: Any,
) -> AffectModel:
    """The model `config_name` for `task` on the backbone of `backbone_cfg` (default: random init).

    `backbone` reuses an already built backbone (its tail is copied) instead of building one from
    `backbone_cfg`. `overrides` replace top-level config fields, e.g. `num_frames=64`.
    """
    config = get_config(config_name)
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)}
        if unknown:
            raise TypeError(f"unknown model config fields {sorted(unknown)}")
        config = dataclasses.replace(config, **overrides)
    if backbone is None:
        backbone = build_backbone(backbone_cfg or BackboneConfig())
    config = resolve_patches(config, backbone.map_shapes, backbone.cfg.input_size)
    spec = {
        **backbone.spec(),
        "mean": list(backbone.mean),  # normalisation of the face crops the maps come from
        "std": list(backbone.std),
        "channels_last": backbone.cfg.channels_last,
    }
    return AffectModel(config, task, copy.deepcopy(backbone.tail), spec)
