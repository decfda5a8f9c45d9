"""`Deferred`: a Ray Data stage named by its class's import path and built in its worker, so that the driver
that hands the stages to Ray Data imports none of their dependencies (the face stage's detector pulls in
torchvision: 1.3 s of a 2-core machine while Ray starts).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np


class Deferred:
    """Ray Data stage: builds `stage` ("package.module.Class") with `kwargs` and passes every batch to it
    (what it returns, a generator included, is what Ray Data gets)."""

    def __init__(self, stage: str, **kwargs: Any):
        module, _, name = stage.rpartition(".")
        self.stage = getattr(importlib.import_module(module), name)(**kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        return self.stage(batch)
