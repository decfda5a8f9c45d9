"""The MobileNetV4 backbone split at the freeze boundary: a frozen part and a trainable tail.

timm's `features_only` MobileNetV4 (`mobilenetv4_conv_small` by default, any variant by name) gives maps at
strides 8, 16 and 32 (64x28x28, 96x14x14, 960x7x7 at 224x224). timm builds it as a stem (conv_stem, bn1,
act1) and a sequence of stages (`blocks.0` ...); `feature_info` names the stage after which each map comes
out. The frozen part is the stem and the stages up to the stride-16 map: it maps images to the stride-8 and
stride-16 maps, which the feature cache stores. The tail is the stages from there to the stride-32 map (the
last stage of the seed paper, trained with the temporal model). Source: timm `MobileNetV3Features`.

This module builds PyTorch modules only; reading, hashing and fetching weights is model/weights.py's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.weights import file_hash, from_hub, load_weights_file

RANDOM_INIT = "random-init"  # weights_hash of a backbone that loaded no weights
RANDOM_INIT_SEED = 0  # seed of a backbone that loads no weights: every process builds the same one
OUT_INDICES = (2, 3, 4)  # timm feature indices of the stride 8, 16 and 32 maps
NORM_FILE, NORM_TIMM = "file", "timm"  # where a backbone's normalisation comes from (its spec says which)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneConfig:
    """Which backbone and which weights."""

    name: str = "mobilenetv4_conv_small"  # timm model name, optionally with a weights tag (`name.tag`)
    pretrained: bool = False  # load timm's hub weights for the name (needs the Hugging Face hub)
    weights: str | None = None  # local weights file (.pth, .pth.tar, .safetensors); wins over `pretrained`
    input_size: int = 224  # side of the square RGB face crop
    channels_last: bool = True  # run the convolutions in channels-last memory format (faster on CPU)


class FrozenPart(nn.Module):
    """Stem and stages up to the stride-16 map; always in eval mode, no gradients."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], stride8_after: int, channels_last: bool):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.stride8_after = stride8_after  # number of blocks after which the stride-8 map comes out
        self.channels_last = channels_last
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenPart:
        # BatchNorm statistics of the frozen part never change: stay in eval mode
        return super().train(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        x = self.stem(images)  # (B, 3, 224, 224) -> (B, 32, 112, 112)
        s8 = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i + 1 == self.stride8_after:
                s8 = x  # (B, 64, 28, 28)
        return s8, x  # (B, 64, 28, 28), (B, 96, 14, 14)


class BackboneTail(nn.Module):
    """The last stage: the stride-16 map to the stride-32 map; the two boundary maps pass through."""

    def __init__(self, blocks: list[nn.Module], channels_last: bool):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.channels_last = channels_last

    def forward(self, maps: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s8, s16 = maps
        x = s16.contiguous(memory_format=torch.channels_last) if self.channels_last else s16
        s32 = self.blocks(x)  # (B, 96, 14, 14) -> (B, 960, 7, 7)
        return s8, s16, s32


class MultiScaleBackbone(nn.Module):
    """`frozen(images)` -> boundary maps, `tail(maps)` -> all three maps, `features` = both."""

    normalization_source: str = NORM_TIMM  # NORM_FILE where the weights file recorded mean and std
    dropped_keys: tuple[str, ...] = ()  # classifier keys the weights file held and loading dropped
    weights_input_size: int | None = None  # input size the weights file says it was trained at

    def __init__(
        self,
        cfg: BackboneConfig,
        frozen: FrozenPart,
        tail: BackboneTail,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        map_shapes: tuple[tuple[int, ...], ...],
        weights_hash: str,
    ):
        super().__init__()
        self.cfg = cfg
        self.frozen = frozen
        self.tail = tail
        self.mean = mean  # per-channel RGB mean of the normalisation the weights expect
        self.std = std  # per-channel RGB std
        self.map_shapes = map_shapes  # ((64, 28, 28), (96, 14, 14), (960, 7, 7))
        self.boundary_shapes = map_shapes[:2]  # what the cache stores
        self.weights_hash = weights_hash

    @property
    def name(self) -> str:
        return self.cfg.name

    def spec(self) -> dict[str, Any]:
        """What a model built on this backbone records and what a cache of its maps must match."""
        spec = backbone_spec(self.cfg.name, self.weights_hash, self.cfg.input_size, self.map_shapes)
        # the maps depend on the normalisation: the spec says which one and where it came from
        norm = {"mean": list(self.mean), "std": list(self.std), "source": self.normalization_source}
        return spec | {"normalization": norm}

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.tail(self.frozen(images))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.features(images)


def backbone_spec(
    name: str, weights_hash: str, input_size: int, map_shapes: tuple[tuple[int, ...], ...]
) -> dict[str, Any]:
    """The backbone's self-description (`boundary`: the cached map shapes, `tail_output`: the tail's)."""
    return {
        "backbone": name,
        "weights_hash": weights_hash,
        "input_size": int(input_size),
        "boundary": [list(s) for s in map_shapes[:2]],
        "tail_output": list(map_shapes[2]),
    }


def build_backbone(cfg: BackboneConfig) -> MultiScaleBackbone:
    """The backbone of `cfg`, with hub weights, a local weights file or random initialisation (from
    `RANDOM_INIT_SEED`, so that the extraction workers and training build the same weights).

    The normalisation is the weights file's where it records one (`model.weights.WeightsInfo`), else
    timm's default for the model name; the spec's `normalization.source` says which.
    """
    info = None
    if cfg.weights is not None:
        body = _create(cfg.name, pretrained=False)
        path = Path(cfg.weights)
        info = load_weights_file(body, path)
        weights_hash = file_hash(path)
    elif cfg.pretrained:
        body = from_hub(cfg.name, lambda: _create(cfg.name, pretrained=True))
        weights_hash = f"timm:{body.pretrained_cfg.get('architecture')}.{body.pretrained_cfg.get('tag')}"
    else:  # every process builds the same random weights, and the caller's random stream is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            body = _create(cfg.name, pretrained=False)
        weights_hash = RANDOM_INIT
    backbone = _split(cfg, body, weights_hash)
    if info is not None:
        backbone.dropped_keys, backbone.weights_input_size = tuple(info.dropped), info.input_size
        if info.dropped:
            log.info("backbone weights %s: dropped %d classifier keys", cfg.weights, len(info.dropped))
        if info.mean is not None and info.std is not None:
            backbone.mean, backbone.std, backbone.normalization_source = info.mean, info.std, NORM_FILE
        if info.input_size is not None and info.input_size != cfg.input_size:
            log.warning("backbone weights %s were trained at %d px; the input size is %d px",
                        cfg.weights, info.input_size, cfg.input_size)  # fmt: skip
    return backbone


def _create(name: str, pretrained: bool) -> Any:  # timm MobileNetV3Features
    import timm  # imported on first use: it takes seconds, and listing configs needs no backbone

    return timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=OUT_INDICES)


def _split(cfg: BackboneConfig, body: Any, weights_hash: str) -> MultiScaleBackbone:
    # body: timm MobileNetV3Features; feature stage s comes out after blocks[s - 1] (stage 0 is the stem)
    stages = [info["stage"] for info in body.feature_info.get_dicts()]
    s8, s16, s32 = stages
    blocks = list(body.blocks)
    stem = nn.Sequential(body.conv_stem, body.bn1, body.act1)
    frozen = FrozenPart(stem, blocks[:s16], stride8_after=s8, channels_last=cfg.channels_last)
    tail = BackboneTail(blocks[s16:s32], channels_last=cfg.channels_last)
    if cfg.channels_last:
        frozen.to(memory_format=torch.channels_last)
        tail.to(memory_format=torch.channels_last)
    pcfg = body.pretrained_cfg
    with torch.no_grad():
        probe = torch.zeros(1, 3, cfg.input_size, cfg.input_size)
        shapes = tuple(tuple(int(d) for d in m.shape[1:]) for m in tail.eval()(frozen(probe)))
    tail.train()
    return MultiScaleBackbone(
        cfg,
        frozen,
        tail,
        mean=tuple(float(v) for v in pcfg["mean"]),
        std=tuple(float(v) for v in pcfg["std"]),
        map_shapes=shapes,
        weights_hash=weights_hash,
    )
