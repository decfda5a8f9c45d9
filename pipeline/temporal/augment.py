"""Image augmentation of a crop cache's training windows: one draw per window, the same for all its frames.

A window is one face track over T frames, so a jitter drawn per frame would make the face shake and flicker
in a way no video does; the temporal model would learn that noise. `augment_windows` draws each window's
parameters once (`draw_params`) and applies them to every frame: a horizontal flip, a small affine jitter
(rotation, scale, shift, one `grid_sample` per frame) and a colour jitter (brightness, contrast,
saturation), on uint8-valued crops before normalisation, on whatever device the crops are (the GPU when
training runs there). `--augment standard` is `AugmentConfig()`; `none` turns it off. Prediction never
augments. Random numbers come from torch's CPU generator (saved with a run's state, so a resumed run
draws what an uninterrupted one would).

May import: torch, pipeline.colour (the luma weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from pipeline.colour import LUMA

Augment = Literal["none", "standard"]
AUGMENTS: tuple[Augment, ...] = ("none", "standard")


@dataclass(frozen=True)
class AugmentConfig:
    """What `--augment standard` does to a window (each factor uniform in its range, drawn per window)."""

    flip: float = 0.5  # probability of a horizontal flip
    degrees: float = 10.0  # rotation in [-degrees, degrees] about the crop's centre
    scale: float = 0.1  # zoom factor in [1 - scale, 1 + scale]
    translate: float = 0.05  # shift in [-translate, translate] of the crop's side, each axis
    brightness: float = 0.2  # pixel values times a factor in [1 - brightness, 1 + brightness]
    contrast: float = 0.2  # distance from the crop's mean grey times a factor in [1 - c, 1 + c]
    saturation: float = 0.2  # distance from each pixel's grey times a factor in [1 - s, 1 + s]


def augment_config(name: str) -> AugmentConfig | None:
    """The augmentation named `name` (none: None)."""
    if name not in AUGMENTS:
        raise ValueError(f"unknown augmentation {name!r}; use one of {', '.join(AUGMENTS)}")
    return AugmentConfig() if name == "standard" else None


def draw_params(windows: int, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """(windows, 8) parameters: flip sign, angle (rad), zoom, shift x, shift y (in [-1, 1] grid units),
    brightness, contrast and saturation factors."""

    def uniform(half: float) -> torch.Tensor:  # (windows,) uniform in [-half, half]
        return (torch.rand(windows, generator=generator) * 2 - 1) * half

    flip = torch.where(torch.rand(windows, generator=generator) < cfg.flip, -1.0, 1.0)
    return torch.stack(
        [
            flip,
            uniform(math.radians(cfg.degrees)),
            1 + uniform(cfg.scale),
            uniform(2 * cfg.translate),  # the grid spans [-1, 1]: a share of the side is twice that
            uniform(2 * cfg.translate),
            1 + uniform(cfg.brightness),
            1 + uniform(cfg.contrast),
            1 + uniform(cfg.saturation),
        ],
        dim=1,
    )


def apply_params(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Images (n, 3, S, S) with values 0-255 and parameters (n, 8) -> augmented images, float, 0-255."""
    x = images.float()
    flip, angle, zoom, dx, dy, bright, contrast, sat = params.to(x.device, torch.float32).unbind(1)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # output grid -> input grid: rotate and zoom, mirror x, shift
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, dx], 1), torch.stack([sin * flip, cos, dy], 1)], 1
    )  # (n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (n, S, S, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    weights = torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)
    x = x * bright.view(-1, 1, 1, 1)
    mean = (x * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)  # (n, 1, 1, 1) mean grey
    x = (x - mean) * contrast.view(-1, 1, 1, 1) + mean
    grey = (x * weights).sum(1, keepdim=True)  # (n, 1, S, S)
    x = (x - grey) * sat.view(-1, 1, 1, 1) + grey
    return x.clamp(0, 255)


def augment_windows(
    crops: torch.Tensor,  # (B, T, 3, S, S) uint8 or float 0-255
    cfg: AugmentConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Windows of crops augmented with one draw per window: (B, T, 3, S, S) float 0-255."""
    b, t = crops.shape[:2]
    params = draw_params(b, cfg, generator).repeat_interleave(t, dim=0)  # (B, 8) -> (B * T, 8)
    return apply_params(crops.flatten(0, 1), params).reshape(crops.shape)
