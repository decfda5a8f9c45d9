"""The frozen-backbone feature stage: aligned face crops -> the maps the cache stores.

`extract_maps` is the pure core: uint8 crops are normalised with the backbone's own mean/std (they follow
the weights, see timm's `pretrained_cfg`), run through the frozen part in batches (channels-last; bf16
autocast where the device runs it faster) and returned as float16 numpy maps. Frames without a face are
not run through the backbone; their maps are zero. The extraction's Ray Data wrapper is
`jobs.extract.stages.backbone.BackboneStage`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from pipeline.features_config import FeatureConfig


@functools.cache
def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(cfg: FeatureConfig, device: torch.device) -> bool:
    """Whether to run the backbone under bf16 autocast on `device`."""
    if cfg.autocast != "auto":
        return cfg.autocast == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_bf16()


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.inference_mode()
def extract_maps(
    crops: np.ndarray | torch.Tensor,  # (n, 3, S, S) uint8 RGB face crops
    backbone: Any,  # MultiScaleBackbone: .frozen, .mean, .std, .cached_shapes
    cfg: FeatureConfig = FeatureConfig(),
    face: np.ndarray | None = None,  # (n,) bool: rows to run; others get zero maps (default: all)
) -> tuple[np.ndarray, ...]:
    """The cached maps of face crops, in `backbone.cached_names` order (N = 2: ((n, 64, 28, 28),
    (n, 96, 14, 14))), float16 numpy (cfg.dtype)."""
    n = len(crops)
    dtype = np.dtype(cfg.dtype)
    out = tuple(np.zeros((n, *shape), dtype) for shape in backbone.cached_shapes)
    rows = np.flatnonzero(np.ones(n, bool) if face is None else np.asarray(face, bool))
    if rows.size == 0:
        return out
    device = _device_of(backbone.frozen)
    bf16 = use_bf16(cfg, device)
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1) * 255.0
    scale = 1.0 / (torch.tensor(backbone.std, device=device).view(1, 3, 1, 1) * 255.0)
    # the maps' torch dtype: torch converts them (numpy's float16 conversion was a twentieth of the stage)
    stored = torch.from_numpy(np.zeros(0, dtype)).dtype
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    source = torch.as_tensor(crops)
    for start in range(0, rows.size, cfg.batch_size):
        take = rows[start : start + cfg.batch_size]
        x = source[torch.from_numpy(take)].to(device, non_blocking=True)  # (b, 3, S, S) uint8
        b = len(take)
        padded = min(-(-b // max(cfg.pad_to, 1)) * max(cfg.pad_to, 1), cfg.batch_size)  # b <= batch_size
        if padded > b:  # (b, 3, S, S) -> (padded, 3, S, S), blank rows at the end
            x = torch.cat([x, x.new_zeros((padded - b, *x.shape[1:]))])
        # normalised as the weights expect, in place; laid out (channels-last) while still one byte a value
        x = x.contiguous(memory_format=layout).float().sub_(mean).mul_(scale)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            maps = backbone.frozen(
                x
            )  # (b, 3, S, S) -> the cached maps, e.g. ((b, 64, 28, 28), (b, 96, 14, 14))
        for target, m in zip(out, maps, strict=True):
            target[take] = m[:b].to(stored).cpu().numpy()
    return out


def cosine_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each frame's flattened maps: (n, ...) x (n, ...) -> (n,)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide((a * b).sum(1), norm, out=np.ones(len(a)), where=norm > 0)
