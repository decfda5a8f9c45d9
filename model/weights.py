"""Backbone weights from outside the process: local weights files (read, cleaned, hashed) and the hub probe.

With model/checkpoint.py this is model/'s only file I/O: model/backbone.py builds the PyTorch modules and
calls here for what it loads. A weights file is a bare state dict or a checkpoint holding one under a known
key (`STATE_DICT_KEYS`), in .pth / .pth.tar (torch) or .safetensors; wrapper prefixes (DDP, compile,
`backbone.`) are stripped and classifier keys dropped. Its identity is the SHA-256 of its bytes.

A file may carry the normalisation its weights expect and the input size they were trained at (what
`lwaffect pretrain` writes; `WeightsInfo`). Names (`META_MEAN`, `META_STD`, `META_INPUT_SIZE`, as timm's
`pretrained_cfg` names them): in .safetensors, metadata entries `mean` and `std` (JSON lists of three floats,
RGB, for pixels in [0, 1]) and `input_size` (a JSON int, the side of the square input); in a torch file,
top-level keys of the same names next to the state dict (`{"state_dict": ..., "mean": [...], "std": [...],
"input_size": 112}`; a tuple or tensor of three numbers; `input_size` an int or timm's `(3, S, S)`). A file
without them expects timm's default normalisation for the model name.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

WRAPPER_PREFIXES = ("module.", "_orig_mod.", "backbone.", "model.", "encoder.")  # stripped from keys
HEAD_PREFIXES = ("conv_head.", "norm_head.", "classifier.", "head.", "fc.")  # classifier parts, dropped
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")  # where a checkpoint keeps its weights
META_MEAN, META_STD, META_INPUT_SIZE = "mean", "std", "input_size"  # what a file may say of its input

T = TypeVar("T")


class BackboneWeightsError(ValueError):
    """Backbone weights that cannot be loaded: unreachable hub, unreadable file, mismatching keys."""


def file_hash(path: Path, length: int = 16) -> str:
    """`sha256:` and the first `length` hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:length]}"


@dataclass(frozen=True)
class WeightsInfo:
    """What loading a weights file found besides the tensors."""

    dropped: list[str]  # classifier keys dropped (after the wrapper prefixes were stripped)
    mean: tuple[float, ...] | None  # RGB mean the weights expect (pixels in [0, 1]); None: not in the file
    std: tuple[float, ...] | None  # RGB std; None with `mean`
    input_size: int | None  # side of the square input the weights were trained at; None: not in the file


def weights_metadata(mean: tuple[float, ...], std: tuple[float, ...], input_size: int) -> dict[str, str]:
    """The .safetensors metadata that records a normalisation and an input size (read back by
    `read_weights`)."""
    return {
        META_MEAN: json.dumps([float(v) for v in mean]),
        META_STD: json.dumps([float(v) for v in std]),
        META_INPUT_SIZE: json.dumps(int(input_size)),
    }


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: a bare state dict or a checkpoint holding one under a known key."""
    return read_weights(path)[0]


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of a weights file and what it says of its input (`META_*` keys present, raw values)."""
    if not path.is_file():
        raise BackboneWeightsError(f"backbone weights file {path} does not exist")
    meta: dict[str, Any] = {}
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open
            from safetensors.torch import load_file

            raw: Any = load_file(str(path))
            with safe_open(str(path), framework="pt") as f:
                stored = f.metadata() or {}
            meta = {k: json.loads(stored[k]) for k in (META_MEAN, META_STD, META_INPUT_SIZE) if k in stored}
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):
                raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BackboneWeightsError(
            f"cannot read backbone weights file {path}: {type(e).__name__}: {e}"
        ) from e
    if isinstance(raw, Mapping):
        for key in STATE_DICT_KEYS:
            if isinstance(raw.get(key), Mapping):
                meta = {k: raw[k] for k in (META_MEAN, META_STD, META_INPUT_SIZE) if k in raw}
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not any(isinstance(v, torch.Tensor) for v in raw.values()):
        raise BackboneWeightsError(
            f"backbone weights file {path} holds no state dict (looked at the top level and under "
            f"{', '.join(STATE_DICT_KEYS)})"
        )
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}, meta


def _triple(path: Path, name: str, value: Any) -> tuple[float, ...]:
    values = value.tolist() if isinstance(value, torch.Tensor) else value
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(v == v for v in out):
        raise BackboneWeightsError(
            f"backbone weights file {path}: {name} must be three numbers, not {value!r}"
        )
    return out


def _normalisation(path: Path, meta: Mapping[str, Any]) -> tuple[Any, Any, int | None]:
    """(mean, std, input_size) of `read_weights`'s metadata, checked; None where the file is silent."""
    if (META_MEAN in meta) != (META_STD in meta):
        raise BackboneWeightsError(f"backbone weights file {path} records one of mean and std, not both")
    mean = std = None
    if META_MEAN in meta:
        mean, std = _triple(path, META_MEAN, meta[META_MEAN]), _triple(path, META_STD, meta[META_STD])
        if min(std) <= 0:
            raise BackboneWeightsError(f"backbone weights file {path}: std must be positive, not {std}")
    size = meta.get(META_INPUT_SIZE)
    if isinstance(size, list | tuple) and len(size) == 3:
        size = size[-1]  # timm's (3, S, S)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
        raise BackboneWeightsError(
            f"backbone weights file {path}: input_size must be a side >= 16, not {size!r}"
        )
    return mean, std, size


def clean_keys(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Keys without wrapper prefixes (DDP, compile, `backbone.`), and the classifier keys dropped."""
    cleaned, dropped = {}, []
    for key, value in state.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        if key.startswith(HEAD_PREFIXES):
            dropped.append(key)
        else:
            cleaned[key] = value
    return cleaned, dropped


def load_weights_file(body: Any, path: Path) -> WeightsInfo:
    """Load a timm-style state dict into the features model; the dropped classifier keys and what the
    file says of its input."""
    raw, meta = read_weights(path)
    mean, std, input_size = _normalisation(path, meta)
    state, dropped = clean_keys(raw)
    expected = body.state_dict()
    # BatchNorm batch counters are absent from some files and never used by the forward pass
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
        if wrong:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong]
            parts.append(f"{len(wrong)} keys of the wrong shape ({_few(shapes)})")
        raise BackboneWeightsError(
            f"backbone weights file {path} does not fit {body.pretrained_cfg.get('architecture')}: "
            + "; ".join(parts)
        )
    body.load_state_dict(state, strict=False)
    return WeightsInfo(dropped, mean, std, input_size)


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return True  # offline mode: let timm look in the local hub cache
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        socket.create_connection((host, int(port or 443)), timeout=timeout).close()
        return True
    except OSError:
        return False


def from_hub(name: str, create: Callable[[], T]) -> T:
    """`create()`, which loads `name`'s weights from the Hugging Face hub, after probing the hub; any
    failure becomes a BackboneWeightsError that says how to pass a weights file instead."""
    hint = (
        f"could not load the pretrained weights of {name!r} from the Hugging Face hub ({{why}}). "
        "Download the weights file elsewhere and pass it with --backbone-weights FILE "
        "(BackboneConfig.weights); a timm or AffectNet-fine-tuned .pth, .pth.tar or .safetensors works."
    )
    if not _hub_reachable():
        raise BackboneWeightsError(hint.format(why="the hub is unreachable"))
    try:
        return create()
    except Exception as e:  # the hub client raises many kinds (OSError, HTTP, timeouts)
        raise BackboneWeightsError(hint.format(why=f"{type(e).__name__}: {e}")) from e
