"""Images of an AffectNet folder as tensors: the face cut out and resized, labels, and batch augmentation.

`FaceImages` reads one part (`pipeline.datasets.affectnet`): the face box of the original layout or the
whole image of the cropped one, resized to the input size (bilinear; the parts of a box outside the image
are black), as (3, S, S) uint8 with its expression (0..10), valence / arousal and whether they exist.
`augment` works on a batch in torch: a mirror of half the images, a random scale, shift and rotation
(one affine resampling, border pixels repeated) and optionally a brightness / contrast change. Colour
jitter is off by default: the synthetic set carries labels in colour, brightness and contrast.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from model.pretrain import AFFECTNET_CLASSES, VA_NONE
from pipeline.datasets.affectnet import AffectNetError, AffectNetImage


class FaceImages(Dataset):
    """(image (3, S, S) uint8, expression (), va (2,), va_valid ()) of each listed image."""

    def __init__(self, images: list[AffectNetImage], size: int):
        self.images, self.size = images, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor, bool]:
        item = self.images[i]
        try:
            with Image.open(item.path) as opened:
                image = opened.convert("RGB")
        except (OSError, UnidentifiedImageError) as e:
            raise AffectNetError(f"cannot read the image {item.path}: {e}") from None
        if item.box is not None:
            x, y, w, h = item.box
            image = image.crop((x, y, x + w, y + h))
        image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)  # (S, S, 3) -> (3, S, S)
        va = torch.tensor([item.valence, item.arousal], dtype=torch.float32)
        return pixels, item.expression, va, item.valence != VA_NONE and item.arousal != VA_NONE


def class_weights(expressions: list[int]) -> list[float]:
    """Weights of classes 0..7 that balance the expression loss: n / (K n_c), 0 for a class absent."""
    counts = np.bincount([e for e in expressions if e < AFFECTNET_CLASSES], minlength=AFFECTNET_CLASSES)
    total = counts.sum()
    return [float(total / (AFFECTNET_CLASSES * c)) if c else 0.0 for c in counts]


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(B, 3, S, S) uint8 or float 0..255 -> float normalised as the weights expect."""
    m = torch.tensor(mean, device=images.device).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - m) / s


def augment(images: torch.Tensor, generator: torch.Generator, flip: bool, jitter: float,
            color_jitter: float) -> torch.Tensor:  # fmt: skip
    """(B, 3, S, S) uint8 -> (B, 3, S, S) float 0..255, randomly mirrored, moved and recoloured."""
    b = images.shape[0]
    x = images.float()

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(images.device)

    if flip:
        mirrored = uniform(b) < 0.5
        x = torch.where(mirrored.view(b, 1, 1, 1), x.flip(-1), x)
    if jitter > 0:
        scale = 1 + (2 * uniform(b) - 1) * jitter  # (B,) zoom
        angle = (2 * uniform(b) - 1) * math.radians(100 * jitter)  # (B,) up to 10 degrees at jitter 0.1
        shift = (2 * uniform(b, 2) - 1) * jitter * 2  # (B, 2) in [-1, 1] image units
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, S, S, 2)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if color_jitter > 0:
        brightness = 1 + (2 * uniform(b, 1, 1, 1) - 1) * color_jitter
        contrast = 1 + (2 * uniform(b, 1, 1, 1) - 1) * color_jitter
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * brightness
    return x.clamp(0, 255)
