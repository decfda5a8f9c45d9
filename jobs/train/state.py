"""What a training run keeps on disk: its best checkpoint, and the resume bookkeeping (progress, every RNG
state, the config and the epoch log).

`jobs.train.trainer` saves the best model with `save_checkpoint`, `RunState` and `rng_state()` with each
epoch in `last.pt`, and appends a record per epoch (and per start or resume) to `log.jsonl`; a restarted run
restores both and goes on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.affect import AffectModel
from model.checkpoint import checkpoint_bytes, checkpoint_file
from pipeline.io import jsonable, write_bytes


@dataclass
class RunState:
    """Progress of a run, saved with every epoch."""

    epoch: int = 0  # epochs completed
    best: float = -math.inf  # best validation metric so far
    best_epoch: int = 0  # epoch that reached it
    since_best: int = 0  # epochs since then
    stopped: bool = False  # stopped early by patience


def rng_state() -> dict:
    """Every RNG state as tensors and plain values, so that `torch.load(weights_only=True)` reads it."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    numpy_state = (kind, torch.from_numpy(np.asarray(keys, np.int64)), pos, has_gauss, gauss)
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def config_dict(cfg: Any) -> dict:
    """A frozen config as a JSON-ready dict (paths and other objects as strings)."""
    return jsonable(dataclasses.asdict(cfg))


def append_log(path: Path, record: dict) -> None:
    """Append one JSON record to a run's log.jsonl."""
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict]:
    """The records of a run's log.jsonl."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_checkpoint(path: str | Path, model: AffectModel, meta: Mapping[str, Any] | None = None) -> Path:
    """Write `model` and `meta` to `path` (a file of any name, or FOLDER/model.safetensors when `path` is
    an existing folder), atomically; returns the file written."""
    path = checkpoint_file(path)
    write_bytes(path, checkpoint_bytes(model, jsonable(dict(meta or {}))))
    return path


@contextmanager
def torch_settings(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seeds, deterministic algorithms and the thread count (None: torch's) of a run; restored afterwards."""
    deterministic, before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(before)
