"""The affect model: backbone tail, multi-scale TAM and a task head over the cached maps.

`AffectModel.forward(maps)` takes the maps the cache stores as a tuple of (B, T, C, H, W) tensors, in the
order of the backbone's `cached_names` (N = 2: stride 8 and stride 16), standardises per channel the cached
s8/s16/s32 maps the TAM reads (`MapStandardiser`), runs the trainable blocks per frame as far as the last
map a level reads that the cache does not hold (none where the cache holds them all), runs the TAM levels
and returns raw head outputs: (B, T, outputs) for frame tasks, (B, outputs) for a clip task. For every task
the outputs are pre-activation (VA before tanh too): `predict` or `heads.activate` turns them into
predictions, the losses take them as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from model.backbone import BackboneConfig, BackboneTail, build_backbone, spec_map_shapes
from model.heads import TaskHead, activate
from model.split import MAP_NAMES, cached_names_of, trainable_blocks_of
from model.tam import LevelConfig, MultiScaleTAM
from model.tasks import get_task

BackboneBN = Literal["train", "frozen"]  # the tail's BatchNorm statistics in train mode


@dataclass(frozen=True)
class ModelConfig:
    """A temporal model over the backbone maps."""

    name: str  # registry name, e.g. tam_s1
    levels: tuple[LevelConfig, ...]  # mixer levels; their outputs are concatenated
    num_frames: int = 32  # sequence length T the token mixing is built for; shorter sequences are padded
    head_dropout: float = 0.3  # dropout on the concatenated features before the head
    description: str = ""  # one line for listings

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"] = [asdict(level) for level in self.levels]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        fields = dict(d)
        fields["levels"] = tuple(LevelConfig(**level) for level in fields["levels"])
        return cls(**fields)


class MapStandardiser(nn.Module):
    """Per-channel standardisation of the cached s8/s16/s32 maps before the TAM: (x - mean) / std per map.

    The frozen backbone's maps carry a large constant part shared by every face (on the stride-8 map of a
    randomly initialised MobileNetV4-small the spread over frames is about a third of the spread over
    positions), which buries small, local changes; standardising each channel with the training set's
    statistics (`fit`, kept as buffers in the checkpoint: `mean{k}`, `std{k}` for map k of s8, s16, s32)
    puts them on the TAM's scale. Maps the tail makes are not standardised, and the tail reads the cached
    maps as the backbone made them. Identity until fitted.
    """

    def __init__(self, cached: tuple[tuple[str, int], ...]):
        super().__init__()
        self.cached = tuple(name for name, _ in cached)  # names of the cached maps, in the cache's order
        for name, c in cached:
            if name in MAP_NAMES:
                k = MAP_NAMES.index(name)
                self.register_buffer(f"mean{k}", torch.zeros(c))  # (C,)
                self.register_buffer(f"std{k}", torch.ones(c))  # (C,)

    def fit(self, stats: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Each cached map's (C,) mean and std, in the cache's order (those of s8, s16, s32 are kept)."""
        for name, (mean, std) in zip(self.cached, stats, strict=True):
            if name in MAP_NAMES:
                k = MAP_NAMES.index(name)
                getattr(self, f"mean{k}").copy_(mean)
                getattr(self, f"std{k}").copy_(std)

    def forward(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) map k of s8, s16, s32 -> standardised, same shape."""
        mean, std = getattr(self, f"mean{k}"), getattr(self, f"std{k}")
        return (x - mean.to(x.dtype)[:, None, None]) / std.to(x.dtype)[:, None, None]


class AffectModel(nn.Module):
    """Tail + TAM + head; `backbone` is the spec of the backbone whose maps it reads
    (`MultiScaleBackbone.spec()`: its cached maps, their shapes, N).

    `backbone_bn` says what the tail's BatchNorm layers do in train mode (`BackboneBN`): "train" updates
    their running statistics from each batch and normalises with the batch's, "frozen" keeps them in eval
    mode (the statistics of the weights; their scale and shift still train).
    """

    def __init__(self, config: ModelConfig, task: str, tail: BackboneTail, backbone: dict[str, Any]):
        super().__init__()
        self.config = config
        self.task = get_task(task)
        self.backbone_spec = dict(backbone)  # backbone, weights_hash, input_size, cached maps, N, ...
        map_shapes = spec_map_shapes(backbone)  # s8, s16, s32
        self.cached_names = cached_names_of(backbone)
        if self.cached_names != tail.split.cached_names:
            raise ValueError(f"the tail reads {tail.split.cached_names}, the spec says {self.cached_names}")
        shapes = [tuple(s) for s in backbone["boundary"]]
        self.standardise = MapStandardiser(
            tuple((n, int(s[0])) for n, s in zip(self.cached_names, shapes, strict=True))
        )
        self.tam = MultiScaleTAM(config.levels, map_shapes, config.num_frames)
        # the tail only as far as the last map a level reads that the cache does not hold (often none)
        blocks = tail.split.tail_blocks_for(self.tam.sources)
        self.tail = tail.truncated(blocks) if blocks else None
        self.head = TaskHead(self.task, self.tam.out_dim, config.head_dropout)
        self.backbone_bn: BackboneBN = "train"

    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    def train(self, mode: bool = True) -> AffectModel:
        super().train(mode)
        if mode and self.backbone_bn == "frozen" and self.tail is not None:
            for module in self.tail.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, maps: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        """maps: the cached tuple, each (B, T, C, H, W) (N = 2: s8 (B, T, 64, 28, 28), s16 (B, T, 96, 14, 14));
        mask (B, T) marks valid frames for clip pooling."""
        dtype = self.head.linear.weight.dtype  # cached maps are float16; autocast casts from here on
        cached = dict(zip(self.cached_names, maps, strict=True))
        b, t = maps[0].shape[:2]
        made: tuple[torch.Tensor | None, ...] = (None, None, None)
        if self.tail is not None:
            flat = [m.flatten(0, 1) for m in maps]  # (B*T, C, H, W) each; only the last enters the tail
            flat[-1] = flat[-1].to(dtype)
            made = self.tail(tuple(flat))  # e.g. (B*T, 96, 14, 14) -> s32 (B*T, 960, 7, 7)
        read = self.tam.sources
        levels: list[torch.Tensor | None] = []
        for k, name in enumerate(MAP_NAMES):
            m = made[k]
            if k not in read:
                levels.append(None)
            elif name in cached:  # the frozen part's map, standardised
                levels.append(self.standardise(k, cached[name].to(dtype)))
            elif m is not None:  # the tail's map: (B*T, C, H, W) -> (B, T, C, H, W)
                levels.append(m.reshape(b, t, *m.shape[1:]))
            else:
                raise RuntimeError(f"no {name} map: neither cached nor made by the tail")
        features = self.tam(tuple(levels))  # -> (B, T, F)
        return self.head(features, mask)  # -> (B, T, outputs) or (B, outputs)

    @torch.no_grad()
    def predict(self, maps: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Activated predictions (tanh / sigmoid / softmax of the task table) in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return activate(self.task, self(maps, mask))
        finally:
            self.train(was_training)


def tail_for(backbone: dict[str, Any], channels_last: bool = True) -> BackboneTail:
    """A randomly initialised tail of the backbone `backbone` describes, checked against its map shapes."""
    cfg = BackboneConfig(
        name=backbone["backbone"],
        input_size=int(backbone["input_size"]),
        channels_last=channels_last,
        trainable_blocks=trainable_blocks_of(backbone),
    )
    built = build_backbone(cfg)
    recorded = [list(s) for s in spec_map_shapes(backbone)], [list(s) for s in backbone["boundary"]]
    now = [list(s) for s in built.map_shapes], [list(s) for s in built.cached_shapes]
    if now != recorded:
        raise ValueError(f"backbone {cfg.name} now gives maps and cached maps {now}, recorded {recorded}")
    return built.tail
