"""Named model configs and the builder: `build_model("tam_s1", "au", BackboneConfig())`.

The seed paper's TAM variants: one mixer level on the stride-32 map (`tam_s1`, its best AU result), two on
the stride-16 and stride-32 maps (`tam_s2`) and three on all maps (`tam_s3`). Tubelets cover 4x4, 2x2 and
1x1 cells of the 28x28, 14x14 and 7x7 maps (7x7 tubelets per frame at every level) and 4 frames; width 256.

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
from model.tam import LevelConfig

S8 = LevelConfig(source=0, patch=4)  # 64x28x28 map, 4x4-cell tubelets
S16 = LevelConfig(source=1, patch=2)  # 96x14x14 map, 2x2-cell tubelets
S32 = LevelConfig(source=2, patch=1)  # 960x7x7 map (the tail's output), one-cell tubelets
S8_LOCAL = LevelConfig(source=0, patch=4, pool="position")  # the 28x28 map, each of the 7x7 places read

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
    spec = {
        **backbone.spec(),
        "mean": list(backbone.mean),  # normalisation of the face crops the maps come from
        "std": list(backbone.std),
        "channels_last": backbone.cfg.channels_last,
    }
    return AffectModel(config, task, copy.deepcopy(backbone.tail), spec)
