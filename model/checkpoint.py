"""Self-describing checkpoints: one safetensors file holding the weights and, in its metadata, the JSON
document that rebuilds the model (task, model config and its fields, backbone spec, lwaffect version) with
whatever the trainer adds (validation metric, AU thresholds, an `extra` dict).

The tensors are the state dict of an `AffectModel` (backbone tail, TAM, head); the frozen part is not in
it: a checkpoint reads the maps of a cache made with the same backbone weights (`weights_hash`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from model import __version__
from model.affect import AffectModel, ModelConfig, tail_for
from model.tasks import get_task

FORMAT = "lwaffect-checkpoint"  # value of the document's `format` field
FORMAT_VERSION = 1  # bumped when the document changes incompatibly
META_KEY = "lwaffect"  # safetensors metadata key holding the JSON document
FOLDER_FILE = "model.safetensors"  # the file looked for when a checkpoint path is a folder
CACHE_FIELDS = ("backbone", "weights_hash", "input_size", "boundary")  # what a cache must match
RESERVED = ("format", "format_version", "lwaffect_version", "task", "model_config", "model", "backbone")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit what the caller expects."""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def checkpoint_document(model: AffectModel, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document a checkpoint of `model` stores: `meta` plus the fields that rebuild the model."""
    meta = dict(meta or {})
    if "task" in meta and meta["task"] != model.task.name:
        raise ValueError(f"meta says task {meta['task']!r} but the model is built for {model.task.name!r}")
    doc = {k: v for k, v in meta.items() if k not in RESERVED}
    doc.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        lwaffect_version=__version__,
        task=model.task.name,
        model_config=model.config.name,
        model=model.config.to_dict(),
        backbone=dict(model.backbone_spec),
    )
    return _jsonable(doc)


def save_checkpoint(path: str | Path, model: AffectModel, meta: Mapping[str, Any] | None = None) -> Path:
    """Write `model` and `meta` to `path` (a file of any name, or FOLDER/model.safetensors when `path` is
    an existing folder), atomically; returns the file written."""
    path = Path(path)
    if path.is_dir():
        path = path / FOLDER_FILE
    doc = checkpoint_document(model, meta)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={META_KEY: json.dumps(doc)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / FOLDER_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The JSON document of a checkpoint, without loading its weights."""
    path = _resolve(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as e:
        raise CheckpointError(f"{path} is not a safetensors checkpoint: {type(e).__name__}: {e}") from e
    if raw is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not an lwaffect checkpoint (no {META_KEY!r})"
        )
    doc = json.loads(raw)
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an lwaffect checkpoint (format {doc.get('format')!r})")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {doc['format_version']}, newer than this lwaffect "
            f"({__version__}) reads ({FORMAT_VERSION}): upgrade lwaffect"
        )
    return doc


def _boundary(value: Any) -> Any:
    # the cache records {"s8": [C, H, W], "s16": [...]}, the model [[C, H, W], ...]: compare the shapes
    if isinstance(value, Mapping):
        value = list(value.values())
    try:
        return [[int(d) for d in shape] for shape in value]
    except TypeError:
        return value


def cache_differences(backbone: Mapping[str, Any], cache_spec: Mapping[str, Any]) -> list[str]:
    """`field: checkpoint value vs cache value` for every field of CACHE_FIELDS that differs."""
    lines = []
    for key in CACHE_FIELDS:
        mine, theirs = backbone.get(key), cache_spec.get(key)
        if key == "boundary":
            mine, theirs = _boundary(mine), _boundary(theirs)
        if key not in cache_spec:
            lines.append(f"{key}: {mine!r} vs (not recorded by the cache)")
        elif mine != theirs:
            lines.append(f"{key}: {mine!r} vs {theirs!r}")
    return lines


def check_cache_spec(
    doc: Mapping[str, Any], cache_spec: Mapping[str, Any], where: str = "checkpoint"
) -> None:
    """Raise CheckpointError when a checkpoint's backbone does not fit a cache spec."""
    diffs = cache_differences(doc["backbone"], cache_spec)
    if diffs:
        raise CheckpointError(
            f"{where} does not fit the feature cache (checkpoint vs cache): "
            + "; ".join(diffs)
            + ". Use a cache extracted with the checkpoint's backbone weights, or retrain on this cache."
        )


def load_checkpoint(
    path: str | Path,
    expect_task: str | None = None,
    expect_cache_spec: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[AffectModel, dict[str, Any]]:
    """The model saved at `path` (in eval mode) and its document; refuses a checkpoint of another task
    or one that does not fit `expect_cache_spec`."""
    path = _resolve(path)
    doc = read_checkpoint_meta(path)
    if expect_task is not None and doc["task"] != get_task(expect_task).name:
        raise CheckpointError(
            f"checkpoint {path} is a {doc['task']!r} model, not {expect_task!r}: "
            f"pass a checkpoint trained for {expect_task!r}"
        )
    if expect_cache_spec is not None:
        check_cache_spec(doc, expect_cache_spec, where=f"checkpoint {path}")
    try:
        config = ModelConfig.from_dict(doc["model"])
        backbone = doc["backbone"]
        tail = tail_for(backbone, channels_last=bool(backbone.get("channels_last", True)))
        model = AffectModel(config, doc["task"], tail, backbone)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"cannot rebuild the model of checkpoint {path}: {type(e).__name__}: {e}"
        ) from e
    state = load_file(str(path), device="cpu")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        raise CheckpointError(f"checkpoint {path} does not match its model: {e}") from e
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {path} does not match its model: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return model.to(device).eval(), doc
