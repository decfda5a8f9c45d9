"""Backbone weights from outside the process: local weights files (read, cleaned, hashed) and the hub probe.

With model/checkpoint.py this is model/'s only file I/O: model/backbone.py builds the PyTorch modules and
calls here for what it loads. A weights file is a bare state dict or a checkpoint holding one under a known
key (`STATE_DICT_KEYS`), in .pth / .pth.tar (torch) or .safetensors; wrapper prefixes (DDP, compile,
`backbone.`) are stripped and classifier keys dropped. Its identity is the SHA-256 of its bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

WRAPPER_PREFIXES = ("module.", "_orig_mod.", "backbone.", "model.", "encoder.")  # stripped from keys
HEAD_PREFIXES = ("conv_head.", "norm_head.", "classifier.", "head.", "fc.")  # classifier parts, dropped
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")  # where a checkpoint keeps its weights

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


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: a bare state dict or a checkpoint holding one under a known key."""
    if not path.is_file():
        raise BackboneWeightsError(f"backbone weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path))
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
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not any(isinstance(v, torch.Tensor) for v in raw.values()):
        raise BackboneWeightsError(
            f"backbone weights file {path} holds no state dict (looked at the top level and under "
            f"{', '.join(STATE_DICT_KEYS)})"
        )
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}


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


def load_weights_file(body: Any, path: Path) -> list[str]:
    """Load a timm-style state dict into the features model; returns the dropped classifier keys."""
    state, dropped = clean_keys(read_state_dict(path))
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
    return dropped


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
