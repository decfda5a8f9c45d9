"""The MobileNetV4 backbone cut at the freeze boundary: a frozen part and a trainable tail.

timm's `features_only` MobileNetV4 (`mobilenetv4_conv_small` by default, any variant by name) gives maps at
strides 8, 16 and 32 (64x28x28, 96x14x14, 960x7x7 at 224x224; 14x14, 7x7, 4x4 at 112). timm builds it as a
stem (conv_stem, bn1, act1) and a sequence of blocks (`blocks.0` ... `blocks.4`); `feature_info` names the
block after which each map comes out. `BackboneConfig.trainable_blocks` (N) cuts it (`model.split`): the
frozen part is the stem and the first blocks, `frozen(images)` gives the maps the cache stores
(`cached_names`: what enters the first trainable block and every earlier s8/s16/s32); the tail is the last
N blocks, `tail(cached)` gives (s8, s16, s32). N = 2 (default) freezes up to the stride-16 map and trains
the last two blocks, the seed paper's "final layers". Source: timm `MobileNetV3Features`.

This module builds PyTorch modules only (its settings, `BackboneConfig`, are model/backbone_config.py's);
reading, hashing and fetching weights is model/weights.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.backbone_config import BackboneConfig
from model.fold import fold_batchnorm
from model.lazy_dynamo import import_without_dynamo
from model.split import BlockSplit
from model.weights import file_hash, from_hub, load_weights_file

RANDOM_INIT = "random-init"  # weights_hash of a backbone that loaded no weights
RANDOM_INIT_SEED = 0  # seed of a backbone that loads no weights: every process builds the same one
OUT_INDICES = (2, 3, 4)  # timm feature indices of the stride 8, 16 and 32 maps
NORM_FILE, NORM_TIMM = "file", "timm"  # where a backbone's normalisation comes from (its spec says which)

log = logging.getLogger(__name__)


class FrozenPart(nn.Module):
    """The stem and the frozen blocks: images -> the cached maps; always in eval mode, no gradients."""

    def __init__(
        self, stem: nn.Module, blocks: list[nn.Module], outputs: tuple[int, ...], channels_last: bool
    ):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.outputs = outputs  # blocks run before each returned map (0: the stem's output), ascending
        self.channels_last = channels_last
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenPart:
        # BatchNorm statistics of the frozen part never change: stay in eval mode
        return super().train(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 3, S, S) normalised images -> the cached maps, e.g. ((B, 64, 28, 28), (B, 96, 14, 14))."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        x = self.stem(images)  # (B, 3, 224, 224) -> (B, 32, 112, 112)
        out = [x] if 0 in self.outputs else []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i + 1 in self.outputs:
                out.append(x)
        return tuple(out)


class BackboneTail(nn.Module):
    """The trainable blocks: the cached maps -> (s8, s16, s32), cached ones passed through.

    `blocks` are the trainable blocks from the first on, possibly fewer than all of them (`truncated`): a
    map the tail does not reach is None.
    """

    def __init__(self, blocks: list[nn.Module], split: BlockSplit, channels_last: bool):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.split = split
        self.channels_last = channels_last

    def truncated(self, blocks: int) -> BackboneTail:
        """A tail running only the first `blocks` trainable blocks (the same modules, not copies)."""
        return BackboneTail(list(self.blocks)[:blocks], self.split, self.channels_last)

    def forward(self, cached: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, ...]:
        """Cached maps, each (B, C, H, W), in `split.cached_names` order -> (s8, s16, s32)."""
        split = self.split
        known = dict(zip(split.cached_positions, cached, strict=True))
        x = cached[-1]  # what enters the first trainable block (N > 0), e.g. (B, 96, 14, 14)
        if self.channels_last and len(self.blocks):
            x = x.contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.blocks):
            x = block(x)
            known[split.first + i + 1] = x  # e.g. block 4: -> (B, 960, 7, 7)
        return tuple(known.get(a) for a in split.map_after)


class MultiScaleBackbone(nn.Module):
    """`frozen(images)` -> cached maps, `tail(cached)` -> (s8, s16, s32), `features` = both."""

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
        cached_shapes: tuple[tuple[int, ...], ...],
        weights_hash: str,
    ):
        super().__init__()
        self.cfg = cfg
        self.frozen = frozen
        self.tail = tail
        self.split = tail.split
        self.mean = mean  # per-channel RGB mean of the normalisation the weights expect
        self.std = std  # per-channel RGB std
        self.map_shapes = map_shapes  # s8, s16, s32: ((64, 28, 28), (96, 14, 14), (960, 7, 7)) at 224
        self.cached_names = self.split.cached_names  # N = 2: ("s8", "s16")
        self.cached_shapes = cached_shapes  # N = 2: ((64, 28, 28), (96, 14, 14)): what the cache stores
        self.weights_hash = weights_hash

    @property
    def boundary_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The cached maps' shapes (the name from when the cut was fixed)."""
        return self.cached_shapes

    @property
    def name(self) -> str:
        return self.cfg.name

    def spec(self) -> dict[str, Any]:
        """What a model built on this backbone records and what a cache of its maps must match."""
        # the maps depend on the normalisation: the spec says which one and where it came from
        norm = {"mean": list(self.mean), "std": list(self.std), "source": self.normalization_source}
        return {
            "backbone": self.cfg.name,
            "weights_hash": self.weights_hash,
            "input_size": int(self.cfg.input_size),
            "trainable_blocks": self.split.trainable,
            "cached_names": list(self.cached_names),
            "boundary": [list(s) for s in self.cached_shapes],  # the cached maps' shapes, in that order
            "map_shapes": [list(s) for s in self.map_shapes],  # s8, s16, s32
            "tail_output": list(self.map_shapes[2]),  # s32 (read by older lwaffect)
            "normalization": norm,
        }

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(m for m in self.tail(self.frozen(images)) if m is not None)

    def folded_frozen(self) -> tuple[FrozenPart, int]:
        """A copy of the frozen part with its BatchNorms folded into its convolutions (`model.fold`), for
        inference only (the extraction's backbone workers, maps made from crops): it is not the part training
        saves. Also the number folded (0, and the part itself, where folding would change the maps beyond
        float rounding)."""
        size = self.cfg.input_size
        probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))  # normalised images
        device = next(self.frozen.parameters()).device
        return fold_batchnorm(self.frozen, probe.to(device))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.features(images)


def spec_map_shapes(spec: Mapping[str, Any]) -> tuple[tuple[int, ...], ...]:
    """The s8, s16, s32 shapes a backbone spec records (older specs: the two cached maps and the tail's)."""
    if "map_shapes" in spec:
        return tuple(tuple(int(d) for d in s) for s in spec["map_shapes"])
    return tuple(tuple(int(d) for d in s) for s in [*spec["boundary"], spec["tail_output"]])


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
    import_without_dynamo(["timm"])  # on first use: it takes seconds, and listing configs needs no backbone
    import timm

    return timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=OUT_INDICES)


def _split(cfg: BackboneConfig, body: Any, weights_hash: str) -> MultiScaleBackbone:
    # body: timm MobileNetV3Features; feature stage s comes out after blocks[s - 1] (stage 0 is the stem)
    s8, s16, s32 = (int(info["stage"]) for info in body.feature_info.get_dicts())
    blocks = list(body.blocks)
    split = BlockSplit(len(blocks), (s8, s16, s32), cfg.trainable_blocks)
    stem = nn.Sequential(body.conv_stem, body.bn1, body.act1)
    frozen = FrozenPart(stem, blocks[: split.first], split.cached_positions, channels_last=cfg.channels_last)
    tail = BackboneTail(blocks[split.first : s32], split, channels_last=cfg.channels_last)
    if cfg.channels_last:
        frozen.to(memory_format=torch.channels_last)
        tail.to(memory_format=torch.channels_last)
    pcfg = body.pretrained_cfg
    with torch.no_grad():
        probe = torch.zeros(1, 3, cfg.input_size, cfg.input_size)
        cached = frozen(probe)
        maps = tail.eval()(cached)
    tail.train()
    return MultiScaleBackbone(
        cfg,
        frozen,
        tail,
        mean=tuple(float(v) for v in pcfg["mean"]),
        std=tuple(float(v) for v in pcfg["std"]),
        map_shapes=tuple(tuple(int(d) for d in m.shape[1:]) for m in maps if m is not None),
        cached_shapes=tuple(tuple(int(d) for d in m.shape[1:]) for m in cached),
        weights_hash=weights_hash,
    )
