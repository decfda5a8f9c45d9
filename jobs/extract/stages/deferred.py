"""The extraction's Ray Data stages as the driver hands them over: each names its stage class by import
path and builds it in its worker, so that the driver imports none of their dependencies (the face stage's
detector pulls in torchvision: 1.3 s of a 2-core machine while Ray starts). Ray's logs and Ray Data's
stats name them `FaceWorker`, `BackboneWorker`, `CropWorker` and `WriteWorker`, and where the writer runs
inside the one backbone or crop worker (`jobs.extract.plan.StagePlan.write_joined`), `BackboneWriteWorker`
and `CropWriteWorker`.

A stage whose module imports torchvision names the library in `libraries`: the worker imports it first
without `torch._dynamo` (`model.lazy_dynamo`), about 1.5 s of CPU less per worker while the others start.
The backbone stage needs none: `model.backbone` imports timm (and torchvision) that way when it builds one.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np

from model.lazy_dynamo import import_without_dynamo


class Deferred:
    """Ray Data stage: builds `stage` ("package.module.Class") with the constructor's keyword arguments and
    passes every batch to it (what it returns, a generator included, is what Ray Data gets)."""

    stage: ClassVar[str]
    libraries: ClassVar[tuple[str, ...]] = ()  # imported first, without `torch._dynamo`

    def __init__(self, **kwargs: Any):
        if self.libraries:
            import_without_dynamo(self.libraries)
        module, _, name = self.stage.rpartition(".")
        self.worker = getattr(importlib.import_module(module), name)(**kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        return self.worker(batch)


class FaceWorker(Deferred):
    stage = "jobs.extract.stages.face.FaceStage"
    libraries = ("facenet_pytorch",)  # and with it torchvision


class BackboneWorker(Deferred):
    stage = "jobs.extract.stages.backbone.BackboneStage"


class CropWorker(Deferred):
    stage = "jobs.extract.stages.crops.CropStage"


class WriteWorker(Deferred):
    stage = "jobs.extract.stages.write.WriteStage"


class WritingWorker:
    """Ray Data stage: the stage `maker` and then the write stage in one worker (a pool of one, as the
    writer must be): every batch is made into maps (or crop images) and written where it was made."""

    maker: ClassVar[type[Deferred]]  # the stage whose rows are written

    def __init__(self, make: dict[str, Any], write: dict[str, Any]):  # each stage's constructor arguments
        self.make_rows = self.maker(**make)
        self.write_rows = WriteWorker(**write)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        return self.write_rows(self.make_rows(batch))


class BackboneWriteWorker(WritingWorker):
    maker = BackboneWorker


class CropWriteWorker(WritingWorker):
    maker = CropWorker
