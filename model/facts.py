"""Model facts: parameters, GFLOPs per frame of each part, cached bytes per frame at the freeze boundary.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on one forward pass (convolutions and
matrix products, 2 FLOPs per multiply-add; normalisation and activations are not counted). The frozen part
is counted on one image; tail + TAM + head on one window of `num_frames` frames, divided by num_frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from model.affect import AffectModel
from model.backbone import MultiScaleBackbone


@dataclass(frozen=True)
class ModelFacts:
    """What one model config costs on one task."""

    config: str  # model config name
    task: str  # task name
    backbone: str  # timm backbone name
    num_frames: int  # window length T of the temporal model
    params_frozen: int  # parameters of the frozen part (stem and stages up to the boundary)
    params_trainable: int  # parameters of the tail, the TAM and the head
    gflops_frozen_per_frame: float  # frozen part, per image
    gflops_tail_tam_per_frame: float  # tail + TAM + head, per frame of a full window
    cache_bytes_per_frame: int  # boundary maps per frame at `cache_dtype`
    cache_dtype: str  # dtype the cache stores the maps in

    @property
    def params_total(self) -> int:
        return self.params_frozen + self.params_trainable

    def to_dict(self) -> dict:
        return {**asdict(self), "params_total": self.params_total}


def count_flops(fn, *args) -> int:
    """FLOPs of `fn(*args)` as FlopCounterMode counts them."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(*args)
    return int(counter.get_total_flops())


def boundary_bytes(shapes: tuple[tuple[int, ...], ...], dtype: torch.dtype = torch.float16) -> int:
    """Bytes per frame of maps of `shapes` stored at `dtype`: 2 x (64*28*28 + 96*14*14) in float16."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return itemsize * sum(int(np.prod(s)) for s in shapes)


def model_facts(
    model: AffectModel, backbone: MultiScaleBackbone, cache_dtype: torch.dtype = torch.float16
) -> ModelFacts:
    """Facts of `model` on `backbone` (the backbone whose frozen part makes its maps)."""
    size = backbone.cfg.input_size
    frozen_flops = count_flops(backbone.frozen, torch.zeros(1, 3, size, size))
    t = model.num_frames
    maps = tuple(torch.zeros(1, t, *shape) for shape in backbone.boundary_shapes)
    was_training = model.training
    model.eval()
    try:
        model_flops = count_flops(model, maps)
    finally:
        model.train(was_training)
    return ModelFacts(
        config=model.config.name,
        task=model.task.name,
        backbone=backbone.name,
        num_frames=t,
        params_frozen=sum(p.numel() for p in backbone.frozen.parameters()),
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        gflops_frozen_per_frame=frozen_flops / 1e9,
        gflops_tail_tam_per_frame=model_flops / t / 1e9,
        cache_bytes_per_frame=boundary_bytes(backbone.boundary_shapes, cache_dtype),
        cache_dtype=str(cache_dtype).removeprefix("torch."),
    )


def facts_table(facts: ModelFacts) -> str:
    """The facts as an aligned two-column table."""
    rows = [
        ("model config", facts.config),
        ("task", facts.task),
        ("backbone", facts.backbone),
        ("window (frames)", str(facts.num_frames)),
        ("parameters, total", f"{facts.params_total:,}"),
        ("parameters, trainable", f"{facts.params_trainable:,}"),
        ("parameters, frozen", f"{facts.params_frozen:,}"),
        ("GFLOPs/frame, frozen part", f"{facts.gflops_frozen_per_frame:.4f}"),
        ("GFLOPs/frame, tail + TAM", f"{facts.gflops_tail_tam_per_frame:.4f}"),
        (f"cache bytes/frame ({facts.cache_dtype})", f"{facts.cache_bytes_per_frame:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
