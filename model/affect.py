"""The affect model: backbone tail, multi-scale TAM and a task head over cached boundary maps.

`AffectModel.forward(maps)` takes the maps at the freeze boundary as a tuple of (B, T, C, H, W) tensors
(stride 8 and stride 16, as the feature cache stores them), standardises per channel the maps the TAM
reads (`MapStandardiser`), computes the last backbone stage per frame where a level reads its stride-32
map, runs the TAM levels and returns raw head outputs: (B, T, outputs) for frame tasks, (B, outputs) for a clip
task. For every task the outputs are pre-activation (VA before tanh too): `predict` or `heads.activate`
turns them into predictions, the losses take them as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from model.backbone import BackboneConfig, BackboneTail, build_backbone
from model.heads import TaskHead, activate
from model.tam import LevelConfig, MultiScaleTAM
from model.tasks import get_task


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
    """Per-channel standardisation of the cached maps before the TAM: (x - mean) / std per map.

    The frozen backbone's boundary maps carry a large constant part shared by every face (on the stride-8
    map of a randomly initialised MobileNetV4-small the spread over frames is about a third of the spread
    over positions), which buries small, local changes; standardising each channel with the training
    set's statistics (`fit`, kept as buffers in the checkpoint) puts them on the TAM's scale. The tail still
    reads the maps as the backbone made them. Identity until fitted.
    """

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        for k, c in enumerate(channels):
            self.register_buffer(f"mean{k}", torch.zeros(c))  # (C,)
            self.register_buffer(f"std{k}", torch.ones(c))  # (C,)
        self.count = len(channels)

    def fit(self, stats: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Set each map's (C,) mean and std."""
        for k, (mean, std) in enumerate(stats):
            getattr(self, f"mean{k}").copy_(mean)
            getattr(self, f"std{k}").copy_(std)

    def forward(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) map number k -> standardised, same shape."""
        mean, std = getattr(self, f"mean{k}"), getattr(self, f"std{k}")
        return (x - mean.to(x.dtype)[:, None, None]) / std.to(x.dtype)[:, None, None]


class AffectModel(nn.Module):
    """Tail + TAM + head; `backbone` is the spec of the backbone whose maps it reads (`backbone_spec`)."""

    def __init__(self, config: ModelConfig, task: str, tail: BackboneTail, backbone: dict[str, Any]):
        super().__init__()
        self.config = config
        self.task = get_task(task)
        self.backbone_spec = dict(backbone)  # backbone, weights_hash, input_size, boundary, tail_output, ...
        map_shapes = tuple(tuple(s) for s in [*backbone["boundary"], backbone["tail_output"]])
        self.standardise = MapStandardiser(tuple(int(shape[0]) for shape in map_shapes[:2]))
        self.tam = MultiScaleTAM(config.levels, map_shapes, config.num_frames)
        # the tail only where a level reads its stride-32 map (a model on the cached maps alone has none)
        self.tail = tail if 2 in self.tam.sources else None
        self.head = TaskHead(self.task, self.tam.out_dim, config.head_dropout)

    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    def forward(self, maps: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        """maps: ((B, T, 64, 28, 28), (B, T, 96, 14, 14)); mask (B, T) marks valid frames for clip pooling."""
        dtype = self.head.linear.weight.dtype  # cached maps are float16; autocast casts from here on
        s16 = maps[1].to(dtype)
        s8 = maps[0].to(dtype) if self.tam.sources & {0} else maps[0]
        b, t = s16.shape[:2]
        s32 = s16  # placeholder where no level reads the tail's map
        if self.tail is not None:
            _, _, s32 = self.tail((s8, s16.flatten(0, 1)))  # (B*T, 96, 14, 14) -> (B*T, 960, 7, 7)
            s32 = s32.reshape(b, t, *s32.shape[1:])  # -> (B, T, 960, 7, 7)
        read = self.tam.sources  # only the maps a level reads are standardised
        maps = tuple(
            self.standardise(k, m) if k < 2 and k in read else m for k, m in enumerate((s8, s16, s32))
        )
        features = self.tam(maps)  # -> (B, T, F)
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
        name=backbone["backbone"], input_size=int(backbone["input_size"]), channels_last=channels_last
    )
    built = build_backbone(cfg)
    recorded = [list(s) for s in [*backbone["boundary"], backbone["tail_output"]]]
    if [list(s) for s in built.map_shapes] != recorded:
        raise ValueError(f"backbone {cfg.name} now gives maps {built.map_shapes}, recorded {recorded}")
    return built.tail
