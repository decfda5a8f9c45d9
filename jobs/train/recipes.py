"""Training recipes: named, frozen sets of training settings (`lwaffect train --recipe NAME`).

A recipe sets the model config, the window, the batch, the optimiser, the schedule, the precision and
each task's loss options; `recipe_config` builds the `TrainConfig` of a task from it, and the settings
given beside it (command-line flags) win over the recipe's. In every recipe norms and biases get no weight
decay (`pipeline.temporal.optim.param_groups`).

- `default`: what measures best on the learnability set (`python -m jobs.learnability`, README): AU on
  `tam_local` (the only config that learns its local marks there), the other tasks on `tam_s1`;
- `seed`: the seed paper authors' released settings of their best AU run (their `hparams.yaml` and
  training module): one mixer level (`tam_s1`), windows of 8 frames, AdamW with learning rate 5e-4 and
  weight decay 2e-5, batch 128, a cosine schedule restarted every 2,000 steps down to 1e-6 with no
  warm-up, bf16; AU sigmoid focal loss (alpha 0.75, gamma 2), EXPR focal cross-entropy with label
  smoothing 0.1, VA 1 - CCC. Their windows are not overlapping at prediction; training windows start
  every 4 frames here, half a window as in the default. Like their code it trains every block of the
  backbone but the stem (`trainable_blocks` 5) on 112 px face crops (`input_size`), so it trains on a
  cache extracted with `--trainable-blocks 5 --input-size 112` (a crop cache, the default from N = 4);
  `lwaffect run --recipe seed` and `python -m jobs.learnability --recipe seed` extract one so.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from jobs.train.trainer import TrainConfig
from model.backbone import BackboneConfig
from model.split import DEFAULT_TRAINABLE_BLOCKS
from pipeline.temporal.optim import Schedule

Options = tuple[tuple[str, Any], ...]  # keyword options, hashable


@dataclass(frozen=True)
class Recipe:
    """Training settings under a name; `tasks` adds or replaces settings for one task."""

    name: str  # registry name: `--recipe NAME`
    description: str  # one line for --help and listings
    config: str = "tam_s1"  # model config (model.configs.MODEL_CONFIGS)
    seq_len: int = 32  # frames per window
    stride: int = 16  # frames between training windows
    batch_size: int = 16  # windows per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    weight_decay: float = 0.05  # AdamW weight decay of weights; norms and biases never decay
    schedule: Schedule = "cosine"  # "cosine": warm-up + one decay; "restarts": decay restarted periodically
    warmup: float = 0.05  # share of all steps spent warming up
    min_lr_ratio: float = 0.01  # lowest learning rate / peak
    restart_steps: int = 2000  # steps of one period of the "restarts" schedule
    bf16: bool = False  # bf16 autocast around the model
    # where the backbone is cut and at what size: the cache must have been extracted so (`train` checks);
    # `run` and `python -m jobs.learnability` extract with these. None: the cache's (those two: 2, 224)
    trainable_blocks: int | None = None  # backbone blocks trained with the temporal model (N, 0-5)
    input_size: int | None = None  # side of the aligned face crop (112 or 224)
    losses: tuple[tuple[str, Options], ...] = ()  # task -> loss options (model.losses.loss_for)
    tasks: tuple[tuple[str, Options], ...] = ()  # task -> other TrainConfig settings for that task

    def settings(self, task: str) -> dict[str, Any]:
        """The TrainConfig fields this recipe sets for `task`."""
        shared = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("name", "description", "losses", "tasks"):
            del shared[key]
        return {**shared, "recipe": self.name, "loss_options": dict(self.losses).get(task, ()),
                **dict(dict(self.tasks).get(task, ()))}  # fmt: skip


RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        "default",
        "the settings that measure best on the learnability set",
        tasks=(("au", (("config", "tam_local"),)),),
    ),
    "seed": Recipe(
        "seed",
        "the seed paper's released settings of its best AU run",
        config="tam_s1", seq_len=8, stride=4, batch_size=128, lr=5e-4, weight_decay=2e-5,
        schedule="restarts", warmup=0.0, min_lr_ratio=1e-6 / 5e-4, restart_steps=2000, bf16=True,
        trainable_blocks=5, input_size=112,
        losses=(
            ("au", (("kind", "focal"), ("alpha", 0.75), ("gamma", 2.0))),
            ("expr", (("gamma", 2.0), ("label_smoothing", 0.1))),
            ("va", (("mse_weight", 0.0),)),
        ),
    ),
}  # fmt: skip


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`, or a ValueError listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}") from None


def recipe_cut(recipe: str = "default", trainable_blocks: int | None = None,
               input_size: int | None = None) -> tuple[int, int]:  # fmt: skip
    """N and the input size of a cache extracted for training under `recipe` (`run`, learnability): the
    values given, else the recipe's, else N = 2 at 224 px (the defaults of `lwaffect extract`)."""
    chosen = get_recipe(recipe)
    n = next(
        v for v in (trainable_blocks, chosen.trainable_blocks, DEFAULT_TRAINABLE_BLOCKS) if v is not None
    )
    size = next(v for v in (input_size, chosen.input_size, BackboneConfig.input_size) if v is not None)
    return n, size


def recipe_config(recipe: str = "default", **given: Any) -> TrainConfig:
    """The TrainConfig of `given["task"]` under `recipe`; `given` (task, input, cache, output and any flag
    given) wins over the recipe's settings. A None value counts as not given."""
    given = {k: v for k, v in given.items() if v is not None}
    return TrainConfig(**{**get_recipe(recipe).settings(given["task"]), **given})
