"""Self-describing checkpoints: one safetensors file holding the weights and, in its metadata, the JSON
document that rebuilds the model (task, model config and its fields, backbone spec, lwaffect version) with
whatever the trainer adds (validation metric, AU thresholds, an `extra` dict).

The tensors are the state dict of an `AffectModel` (backbone tail, TAM, head); the frozen part is not in
it: a checkpoint reads the maps of a cache made with the same backbone weights (`weights_hash`; whether a
cache fits is `pipeline.cache.spec.check_cache_spec`).

model/ writes no files: this module reads checkpoints, and `checkpoint_bytes` gives a checkpoint file's
content for the caller to write (atomically: `jobs.train.state.save_checkpoint`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from model import __version__
from model.affect import AffectModel, ModelConfig, tail_for
from model.tasks import get_task

FORMAT = "lwaffect-checkpoint"  # value of the document's `format` field
FORMAT_VERSION = 1  # bumped when the document changes incompatibly
META_KEY = "lwaffect"  # safetensors metadata key holding the JSON document
FOLDER_FILE = "model.safetensors"  # the file looked for when a checkpoint path is a folder
RESERVED = ("format", "format_version", "lwaffect_version", "task", "model_config", "model", "backbone")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit what the caller expects."""


def checkpoint_document(model: AffectModel, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document a checkpoint of `model` stores: `meta` plus the fields that rebuild the model.

    `meta` holds values JSON can hold (`pipeline.io.jsonable` makes them so)."""
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
    return doc


def checkpoint_file(path: str | Path) -> Path:
    """The file of a checkpoint path: the path itself, or FOLDER/model.safetensors when it is a folder."""
    path = Path(path)
    return path / FOLDER_FILE if path.is_dir() else path


def checkpoint_bytes(model: AffectModel, meta: Mapping[str, Any] | None = None) -> bytes:
    """The content of a checkpoint file of `model` and `meta` (see `checkpoint_document`)."""
    doc = checkpoint_document(model, meta)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(tensors, metadata={META_KEY: json.dumps(doc)})


def _resolve(path: str | Path) -> Path:
    path = checkpoint_file(path)
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


def load_checkpoint(
    path: str | Path,
    expect_task: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[AffectModel, dict[str, Any]]:
    """The model saved at `path` (in eval mode) and its document; refuses a checkpoint of another task."""
    path = _resolve(path)
    doc = read_checkpoint_meta(path)
    if expect_task is not None and doc["task"] != get_task(expect_task).name:
        raise CheckpointError(
            f"checkpoint {path} is a {doc['task']!r} model, not {expect_task!r}: "
            f"pass a checkpoint trained for {expect_task!r}"
        )
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
    missing = [k for k in result.missing_keys if not k.startswith("standardise.")]  # older: identity
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {path} does not match its model: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return model.to(device).eval(), doc
