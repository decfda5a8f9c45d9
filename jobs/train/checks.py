"""What a training run checks before it starts: its subjects, their cache shards, the cache's cut and
backbone against the run's settings and model, and what makes maps from a crop cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from jobs.train.config import TrainConfig, TrainError
from model.affect import AffectModel
from model.backbone import BackboneConfig, build_backbone
from model.split import cache_kind_of, trainable_blocks_of
from pipeline.cache.spec import cache_differences
from pipeline.temporal.augment import augment_config
from pipeline.temporal.crops import CropMaps, cache_backbone


def split_subjects(catalogue: Any, task: str, split: str) -> list[str]:
    return [s.name for s in catalogue.subjects_in(task, split)]


def labelled_subjects(catalogue: Any, task: str, split: str, subset: tuple[str, ...] | None) -> list[str]:
    names = [s for s in split_subjects(catalogue, task, split) if (task, s) in catalogue.labels]
    if subset is not None:
        unknown = sorted(set(subset) - set(names))
        if unknown:
            raise TrainError(f"not labelled {split} subjects of {task}: {', '.join(unknown)}")
        names = [s for s in names if s in set(subset)]
    return names


def check_cache(
    cfg: TrainConfig, cached: set[str], train: list[str], val: list[str], say: Callable[[str], None]
) -> tuple[list[str], list[str]]:
    """Train and validation subjects that have shards; the missing ones are an error unless allowed."""
    missing = [s for s in train + val if s not in cached]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        splits = [
            name for name, names in (("train", train), ("validation", val)) if set(names) & set(missing)
        ]
        command = " and ".join(
            f"lwaffect extract --input {cfg.input} --cache {cfg.cache} --split {s}" for s in splits
        )
        if not cfg.allow_missing:
            raise TrainError(
                f"{len(missing)} labelled subjects have no cache shard: {shown}. Run `{command}` first, "
                "or pass --allow-missing to train on the shards that exist."
            )
        say(f"training without {len(missing)} subjects that have no cache shard: {shown}")
    train, val = [s for s in train if s in cached], [s for s in val if s in cached]
    if not train or not val:
        raise TrainError(f"no cached {'train' if not train else 'validation'} subjects for {cfg.task}")
    return train, val


def check_cut(cfg: TrainConfig, spec: dict) -> None:
    """--trainable-blocks and --input-size, where given (or set by the recipe), must be the cache's: its
    maps follow from both. The error names both and the flags of an extraction that fits."""
    pairs = (("trainable-blocks", cfg.trainable_blocks, trainable_blocks_of(spec)),
             ("input-size", cfg.input_size, int(spec.get("input_size", 224))))  # fmt: skip
    wrong = [(key, given, made) for key, given, made in pairs if given is not None and given != made]
    if wrong:
        made = ", ".join(f"--{key} {made}" for key, _, made in wrong)
        asked = ", ".join(f"--{key} {given}" for key, given, _ in wrong)
        by = f" (--recipe {cfg.recipe} sets them unless given)" if cfg.recipe != "default" else ""
        raise TrainError(
            f"the cache {cfg.cache} was made with {made}, this run asks for {asked}{by}: extract a cache "
            f"with `lwaffect extract {' '.join(f'--{k} {g}' for k, g, _ in wrong)}`, or train with "
            f"{' '.join(f'--{k} {m}' for k, _, m in wrong)}"
        )


def backbone_for(cfg: TrainConfig, spec: dict) -> BackboneConfig:
    """The backbone whose tail is trained: the one the cache was made with."""
    try:
        return cache_backbone(spec, cfg.backbone_weights, cfg.cache)
    except ValueError as e:
        raise TrainError(str(e)) from None


def check_backbone(model: AffectModel, spec: dict) -> None:
    """The model's backbone must be the one whose maps the cache holds (a checkpoint records it)."""
    diffs = cache_differences(model.backbone_spec, spec)
    if diffs:
        raise TrainError(
            "the model's backbone does not fit the feature cache (model vs cache): "
            + "; ".join(diffs)
            + ". Pass the backbone weights the cache was made with, or extract a cache with these."
        )


def crop_maps(
    cfg: TrainConfig, spec: dict, backbone: BackboneConfig, device: torch.device
) -> CropMaps | None:
    """What makes the maps from a crop cache's crops on `device` (augmented as `cfg.augment` says); None
    for a map cache, which can not be augmented."""
    if cache_kind_of(spec) != "crops":
        if cfg.augment not in (None, "none"):
            raise TrainError(
                f"--augment {cfg.augment} needs a crop cache (lwaffect extract --cache-kind crops)"
            )
        return None
    return CropMaps(build_backbone(backbone), device, augment_config(cfg.augment or "standard"))
