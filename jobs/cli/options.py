"""Choice values and option types shared by the commands of the `lwaffect` command line (jobs/cli/).

A choice is a Literal type: typer lists its values in --help and refuses any other (exit 2, naming the
choices), and the config a command builds takes the value as it is. Each copies a set of names kept where
the library defines it (the task table, the splits, the fill methods, ...): mypy checks that it is no
wider than what the config accepts, and tests/jobs/test_cli.py that it is all of the named sets (tasks,
splits, fill methods, averages, synthetic layouts, bench resolutions). Only typing and typer are imported
here, so that `lwaffect --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

TaskName = Literal["va", "au", "expr", "ah", "emi"]  # model.tasks.TASKS
SplitName = Literal["train", "validation", "test", "all"]  # model.tasks.SPLITS
FillName = Literal["linear", "nearest"]  # pipeline.fill.FillMethod
AverageName = Literal["macro", "binary"]  # pipeline.metrics.Average: AH F1 averaging
SubjectName = Literal["auto", "main"]  # jobs.extract.driver.ExtractConfig.subject
FaceModeName = Literal["detect", "cropped-aligned"]  # jobs.extract.stages.FaceMode
DeviceName = Literal["cpu", "cuda"]  # where extract and bench run their models
LayoutName = Literal["affwild2", "emi", "ah", "affectnet"]  # pipeline.synth.common.LAYOUTS
AffectNetFormatName = Literal["original", "cropped"]  # pipeline.synth.common.AFFECTNET_FORMATS
ResolutionName = Literal["360p", "480p", "720p", "1080p"]  # jobs.bench.videos.RESOLUTIONS
RecipeName = Literal["default", "seed"]  # jobs.train.recipes.RECIPES
InputSizeName = Literal[112, 224]  # sides of the face crop the backbone takes (BackboneConfig.input_size)
BackboneBNName = Literal["train", "frozen"]  # model.affect.BackboneBN
CacheKindName = Literal["maps", "crops"]  # pipeline.cache.crops.CACHE_KINDS
AugmentName = Literal["none", "standard"]  # pipeline.temporal.augment.AUGMENTS

Task = Annotated[TaskName, typer.Option("--task", "-t", help="Task: va, au, expr, ah or emi.")]
Input = Annotated[
    Path, typer.Option("--input", "-i", help="Input folder (Aff-Wild2, EMI, AH layout or plain).")
]
Split = Annotated[SplitName, typer.Option("--split", "-s", help="Split: train, validation, test or all.")]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)."),
]
WorkerLogs = Annotated[
    bool,
    typer.Option(
        help="Show the extraction workers' own output (a library's warnings) here; it is kept in Ray's "
        "session logs folder either way (/tmp/ray/session_latest/logs on each node)."
    ),
]
Fill = Annotated[FillName, typer.Option(help="Frames without a face: linear or nearest.")]
Cache = Annotated[str, typer.Option(help="Feature cache made by `lwaffect extract`.")]
Subject = Annotated[
    SubjectName,
    typer.Option(help="Face to follow: auto (the catalogue's main/left/right) or main (always main)."),
]
Faces = Annotated[
    FaceModeName,
    typer.Option(help="detect (MTCNN + tracking) or cropped-aligned (the organiser's crops)."),
]
Average = Annotated[AverageName, typer.Option(help="AH F1 averaging: macro (2 classes) or binary.")]
Layout = Annotated[LayoutName, typer.Option(help="Layout: affwild2, emi, ah or affectnet (still images).")]
CacheKind = Annotated[
    CacheKindName | None,
    typer.Option(
        help="What the cache stores: maps (the frozen backbone's maps) or crops (the aligned face crops, "
        "JPEG 4:4:4 quality 90; training and prediction run the frozen part on the fly). Default: crops "
        "from --trainable-blocks 4 on, where the maps outweigh the crop, maps below."
    ),
]
Resolution = Annotated[ResolutionName, typer.Option(help="Video size: 360p, 480p, 720p or 1080p.")]

# training settings, shared by `train` and `run` (which passes them on when it trains); those a recipe
# sets are None unless given, and then the recipe's
Recipe = Annotated[
    RecipeName,
    typer.Option(help="Training recipe: default or seed (the seed paper's settings); flags given win."),
]
ModelConfig = Annotated[
    str | None,
    typer.Option(help="Model config: tam_s1, tam_s2, tam_s3 or tam_local (default: the recipe's)."),
]
Epochs = Annotated[int, typer.Option(min=1, help="Maximum number of epochs.")]
SeqLen = Annotated[int | None, typer.Option(min=1, help="Frames per window (default: the recipe's).")]
TrainStride = Annotated[
    int | None, typer.Option(min=1, help="Frames between training windows (default: the recipe's).")
]
LearningRate = Annotated[
    float | None, typer.Option(help="Peak learning rate, AdamW (default: the recipe's).")
]
BatchSize = Annotated[int | None, typer.Option(min=1, help="Windows per step (default: the recipe's).")]
Seed = Annotated[int, typer.Option(help="Seed of weights, dropout and window order.")]
Patience = Annotated[int, typer.Option(min=1, help="Epochs without improvement before stopping.")]
Ema = Annotated[float, typer.Option(help="EMA decay of the weights; 0 disables it.")]
Bf16 = Annotated[bool | None, typer.Option(help="bf16 autocast around the model (default: the recipe's).")]
Threads = Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default: one per core).")]
BackboneWeights = Annotated[
    Path | None, typer.Option(help="Backbone weights file the cache was made with (if not where it was).")
]
Augment = Annotated[
    AugmentName | None,
    typer.Option(
        help="Image augmentation when training from a crop cache, one draw per window: none or standard "
        "(flip, rotation 10 deg, zoom 10%, shift 5%, brightness / contrast / saturation 20%; the default)."
    ),
]
Device = Annotated[str, typer.Option(help="Device of the temporal model: cpu, cuda or cuda:N.")]

# where the backbone is cut and at what size (extract, train, run, info)
TrainableBlocks = Annotated[
    int,
    typer.Option(
        min=0,
        max=5,
        help="Backbone blocks trained with the temporal model (0-5; the rest is frozen and cached). "
        "Train and predict take a cache extracted with the same number.",
    ),
]
InputSize = Annotated[
    InputSizeName, typer.Option(help="Side of the aligned face crop the backbone takes: 112 or 224 px.")
]
BackboneBN = Annotated[
    BackboneBNName,
    typer.Option(
        help="BatchNorm statistics of the trainable blocks in training: train (batch statistics) or frozen."
    ),
]
RecipeBlocks = Annotated[
    int | None,
    typer.Option(
        "--trainable-blocks",
        min=0,
        max=5,
        help="Backbone blocks trained with the temporal model (0-5; the rest is frozen and cached). "
        "Default: the recipe's (seed: 5), else 2.",
    ),
]
RecipeInputSize = Annotated[
    InputSizeName | None,
    typer.Option(
        "--input-size",
        help="Side of the aligned face crop the backbone takes, 112 or 224 px. Default: the recipe's "
        "(seed: 112), else 224.",
    ),
]
CachedBlocks = Annotated[
    int | None,
    typer.Option(
        "--trainable-blocks",
        min=0,
        max=5,
        help="Backbone blocks to train (0-5): the cache's number, which is the default; another is an error.",
    ),
]
CachedInputSize = Annotated[
    InputSizeName | None,
    typer.Option("--input-size", help="Face crop side, 112 or 224: the cache's, which is the default."),
]
