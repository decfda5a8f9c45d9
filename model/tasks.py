"""The task table: every fact about the five ABAW tasks that other modules need.

Outputs, activations, label columns, submission headers, value ranges and invalid markers live here once;
the model, the data set adapters, the metrics and the submission writers read them instead of repeating
them. Source: the ABAW 6th-8th challenge material (see the project README, "Tasks").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26",
)  # fmt: skip
EXPR_NAMES: tuple[str, ...] = (
    "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other",
)  # fmt: skip
EMI_NAMES: tuple[str, ...] = (
    "Admiration", "Amusement", "Determination", "Empathic Pain", "Excitement", "Joy",
)  # fmt: skip


@dataclass(frozen=True)
class TaskSpec:
    """One task of the challenge."""

    name: str  # short name used on the command line: va, au, expr, ah, emi
    dataset: Literal["affwild2", "bah", "hume"]  # the data set layout that carries its labels
    unit: Literal["frame", "clip"]  # one prediction per frame, or one per clip
    outputs: int  # width of the model head
    activation: Literal["tanh", "sigmoid", "softmax"]  # maps head outputs to predictions
    kind: Literal["regression", "multilabel", "multiclass", "binary"]  # how labels are read and scored
    label_columns: tuple[str, ...]  # columns of the label arrays, in order
    header: tuple[str, ...]  # submission header (without image_location); EXPR keeps all 8 names
    value_range: tuple[float, float]  # valid range of a label value
    invalid: float | None  # marker of an invalid frame label in annotation files, None if there is none
    metric: str  # name of the official metric
    # what a frame (clip) with nothing to predict from gets, per label column: a failed video's lines
    neutral: tuple[float, ...]

    @property
    def probability_columns(self) -> tuple[str, ...]:
        """Probability columns of a predictions table, `p_<header name>`; none for a regression task."""
        return () if self.kind == "regression" else tuple(f"p_{n}" for n in self.header)


TASKS: dict[str, TaskSpec] = {
    "va": TaskSpec(
        name="va", dataset="affwild2", unit="frame", outputs=2, activation="tanh", kind="regression",
        label_columns=("valence", "arousal"), header=("valence", "arousal"),
        value_range=(-1.0, 1.0), invalid=-5.0, metric="mean CCC of valence and arousal",
        neutral=(0.0, 0.0),
    ),
    "au": TaskSpec(
        name="au", dataset="affwild2", unit="frame", outputs=12, activation="sigmoid", kind="multilabel",
        label_columns=AU_NAMES, header=AU_NAMES,
        value_range=(0.0, 1.0), invalid=-1.0, metric="mean F1 over 12 AUs",
        neutral=(0.0,) * 12,
    ),
    "expr": TaskSpec(
        name="expr", dataset="affwild2", unit="frame", outputs=8, activation="softmax", kind="multiclass",
        label_columns=("expression",), header=EXPR_NAMES,
        value_range=(0.0, 7.0), invalid=-1.0, metric="macro F1 over 8 classes",
        neutral=(0.0,),
    ),
    "ah": TaskSpec(
        name="ah", dataset="bah", unit="frame", outputs=1, activation="sigmoid", kind="binary",
        label_columns=("ah",), header=("ah",),
        value_range=(0.0, 1.0), invalid=None, metric="F1 (macro over 2 classes by default)",
        neutral=(0.0,),
    ),
    "emi": TaskSpec(
        name="emi", dataset="hume", unit="clip", outputs=6, activation="sigmoid", kind="regression",
        label_columns=EMI_NAMES, header=EMI_NAMES,
        value_range=(0.0, 1.0), invalid=None, metric="mean Pearson r over 6 intensities",
        neutral=(0.5,) * 6,
    ),
}  # fmt: skip

AFFWILD2_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if t.dataset == "affwild2")  # va au expr
SPLIT_PARTS: tuple[str, ...] = ("train", "validation", "test")  # the parts of a data set, in this order
SPLITS: tuple[str, ...] = (*SPLIT_PARTS, "all")  # what a `--split` takes: one part, or every subject


def get_task(name: str) -> TaskSpec:
    """The task called `name`, or a ValueError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
