"""Training and prediction from a crop cache: the cached tuple made on the fly from the stored face crops.

A crop cache (`pipeline.cache.crops`) holds the aligned crops, not the frozen part's maps; its window
loader yields ((B, T, 3, S, S) uint8,) where a map cache's yields the maps. `CropMaps` turns such a batch
into what a model consumes: augmentation in training (`pipeline.temporal.augment`, one draw per
window), normalisation with the backbone's mean/std, a copy of `backbone.frozen` with its BatchNorms folded
into its convolutions (`model.fold`; the backbone itself is left as it was) under no_grad on the training
device (the GPU when there is one), in chunks of frames -> the cached tuple, each (B, T, ...) float32. Frames
whose crop is blank (no face: the cache stores no image there) get zero maps, as a map cache holds them.
`SampledMaps` gives `pipeline.temporal.stats.map_statistics` a sample of each subject's maps computed
this way, and `cache_backbone` the backbone a cache was made with.

May import: numpy, torch, model (backbone, split), pipeline.features, pipeline.temporal.augment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from model.backbone import RANDOM_INIT, BackboneConfig
from model.split import trainable_blocks_of
from pipeline.features import FeatureConfig, use_bf16
from pipeline.temporal.augment import AugmentConfig, augment_windows

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]  # cached tuple, targets, mask


def cache_backbone(spec: Mapping[str, Any], weights: str | None = None, location: str = "") -> BackboneConfig:
    """The backbone a cache (its `spec`) was made with, cut where it was cut (its N and input size):
    `weights` where given, else the weights file the spec records (where it still is), the hub weights or
    the random initialisation. A ValueError says what to pass when the file is gone."""
    cut = BackboneConfig(name=spec.get("backbone", BackboneConfig.name), input_size=int(spec.get("input_size", 224)),
                         trainable_blocks=trainable_blocks_of(spec))  # fmt: skip
    if weights is not None:
        return replace(cut, weights=weights)
    weights_hash = str(spec.get("weights_hash", RANDOM_INIT))
    if weights_hash.startswith("sha256:"):  # made from a weights file: the same file, where it still is
        recorded = spec.get("weights")
        if not recorded or not Path(recorded).is_file():
            raise ValueError(
                f"the cache {location} was made with the backbone weights file {recorded or weights_hash}, "
                "which is not there: pass it with --backbone-weights FILE"
            )
        return replace(cut, weights=str(recorded))
    return replace(cut, pretrained=bool(spec.get("pretrained", weights_hash.startswith("timm:"))))


class CropMaps:
    """Crops (B, T, 3, S, S) uint8 -> the cached tuple ((B, T, C, H, W) float32, ...) on `device`."""

    def __init__(
        self,
        backbone: Any,  # MultiScaleBackbone: .frozen, .mean, .std
        device: torch.device | str = "cpu",
        augment: AugmentConfig | None = None,  # training-time augmentation; None: none
        chunk: int = 128,  # frames per frozen-part call (the stem's output is 1.6 MB a frame in float32)
        features: FeatureConfig = FeatureConfig(),  # autocast as in the extraction (bf16 where native)
    ):
        self.device = torch.device(device)
        # a copy with the BatchNorms folded into the convolutions (`model.fold`): the same maps, sooner
        self.frozen = backbone.folded_frozen()[0].to(self.device)
        self.augment, self.chunk = augment, chunk
        self.mean = torch.tensor(backbone.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(backbone.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self.bf16 = use_bf16(features, self.device)

    @torch.no_grad()
    def __call__(self, crops: torch.Tensor, train: bool = False) -> tuple[torch.Tensor, ...]:
        """The cached tuple of windows of crops (B, T, 3, S, S); augmented when `train` and set."""
        b, t = crops.shape[:2]
        crops = crops.to(self.device, non_blocking=True)
        blank = crops.flatten(2).amax(dim=2) == 0  # (B, T): no face stored
        x = augment_windows(crops, self.augment) if train and self.augment is not None else crops.float()
        x = x.flatten(0, 1)  # (B * T, 3, S, S)
        parts: list[tuple[torch.Tensor, ...]] = []
        for start in range(0, len(x), self.chunk):
            images = (
                x[start : start + self.chunk] - self.mean
            ) / self.std  # normalised as the weights expect
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                parts.append(tuple(m.float() for m in self.frozen(images)))  # ((n, C, H, W), ...)
        maps = tuple(
            torch.cat(level).reshape(b, t, *level[0].shape[1:]) for level in zip(*parts, strict=True)
        )
        keep = (~blank).to(maps[0].dtype).view(b, t, 1, 1, 1)
        return tuple(m * keep for m in maps)  # (B, T, C, H, W) each, zero where no face

    def batch(self, batch: Batch, train: bool = False) -> Batch:
        """A loader batch ((crops,), targets, mask) -> (cached tuple, targets, mask)."""
        (crops,), targets, mask = batch
        return self(crops, train), targets, mask


class SampledMaps:
    """A read-only view of a crop cache for `map_statistics`: `read(subject)` gives the maps of up to
    `runs` x `run_frames` face frames of the subject (runs spread evenly over it), computed by `crop_maps`.
    Decoding and running every frame of 32 long subjects would take minutes on a CPU; a few hundred frames
    a subject give the per-channel statistics to well under a percent."""

    def __init__(self, cache: Any, crop_maps: CropMaps, runs: int = 4, run_frames: int = 32):
        self.cache, self.crop_maps, self.runs, self.run_frames = cache, crop_maps, runs, run_frames

    def read(self, subject: str) -> SimpleNamespace:
        n = int(self.cache.num_frames(subject))
        starts = np.unique(np.linspace(0, max(n - self.run_frames, 0), self.runs).astype(int))
        crops, face = [], []
        for start in starts:
            part = self.cache.read(subject, int(start), int(start) + self.run_frames)
            crops.append(part.maps[0][part.face])
            face.append(part.face[part.face])
        faces, images = np.concatenate(face), np.concatenate(crops)  # (n,), (n, 3, S, S)
        n = len(faces)
        if n == 0:  # no face: no maps, but their shapes (one blank crop's, none kept)
            images = np.ones((1, *images.shape[1:]), np.uint8)
        maps = tuple(m[0, :n].cpu().numpy() for m in self.crop_maps(torch.from_numpy(images)[None]))
        return SimpleNamespace(face=faces, maps=maps)  # maps ((n, C, H, W), ...)
