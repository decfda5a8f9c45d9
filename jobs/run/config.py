"""The settings of one `lwaffect run`: input, tasks, split, weights or training settings, and where it writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cache.crops import CacheKind
from pipeline.fill import FillMethod

ALL_TASKS = "all"  # `--task all`: every task the input has labels (or weights) for


class RunError(ValueError):
    """A usage or configuration error found before or while running; the message says what to do."""


@dataclass(frozen=True)
class RunConfig:
    """One end-to-end run over an input folder."""

    input: Path  # data set folder (Aff-Wild2, EMI, AH layout or plain)
    tasks: tuple[str, ...]  # task names (va, au, expr, ah, emi), or ("all",)
    weights: tuple[
        Path, ...
    ] = ()  # checkpoints made by `lwaffect train`, one per task (each records its task)
    output: Path = Path("out")  # output folder: predictions/, submission/, checkpoints/, cache/, run.json
    split: str = "test"  # split whose subjects are predicted: train, validation, test or all
    cache: str | None = None  # feature cache location; None: OUTPUT/cache
    address: str | None = None  # Ray cluster to extract on; None: $RAY_ADDRESS, else a local Ray
    # the extraction workers' own output on the terminal (jobs.extract.runtime.RuntimeConfig.worker_logs)
    worker_logs: bool = False
    stride: int | None = None  # frames between prediction windows; None: the checkpoint's
    fill: FillMethod = "linear"  # frames without a face: "linear" or "nearest"
    device: str = "cpu"  # device of the temporal model: cpu, cuda or cuda:N
    # `lwaffect train` settings (TrainConfig field -> value, and "recipe": a jobs.train.recipes name) for
    # tasks trained here; unset ones are the recipe's (the default recipe where none is named)
    train_options: tuple[tuple[str, Any], ...] = ()
    retrain: bool = (
        False  # train again even where OUT/checkpoints/<task> holds a model made with other settings
    )
    final: bool = False  # after the validation run, train on train + validation for the epochs it chose
    report: bool = True  # write OUT/report.html at the end (`jobs.report`)
    # backbone blocks trained (N) and the side of the aligned face crops (112 or 224): what the cache is
    # extracted for and the models trained with; None: the recipe's, else 2 and 224 (`checkpoints.backbone_cut`)
    trainable_blocks: int | None = None
    input_size: int | None = None
    # what an extraction here caches: maps or crops; None: as N says (`pipeline.cache.crops.default_cache_kind`)
    cache_kind: CacheKind | None = None

    @property
    def cache_location(self) -> str:
        return self.cache if self.cache is not None else str(Path(self.output) / "cache")

    def checkpoint_dir(self, task: str) -> Path:
        """OUT/checkpoints/<task>: where a model trained by this run lives."""
        return Path(self.output) / "checkpoints" / task
