"""Synthetic data sets of real H.264 videos of a real face, with labels a model can learn from face crops.

`pipeline.synth.dataset.make_dataset(SynthConfig(output=DIR, layout=...))` writes one of three layouts (as in the project's
interface notes; `lwaffect synth` on the command line):

- `affwild2` (`pipeline.synth.affwild2`): videos `batch1/`, `batch2/` named `<index>-<fps>-<W>x<H>.mp4`,
  VA / AU / EXPR annotation files for the train and validation subjects, test release lists, organiser-style
  example submissions; one two-subject video (`_left` / `_right`) and one video with a stretch of frames
  without a face;
- `emi` (`pipeline.synth.layouts`): clips `raw/<clip>.mp4`, `train_split.csv` / `valid_split.csv` with six
  intensities per clip; the test clips are only in `raw/`;
- `ah` (`pipeline.synth.layouts`): BAH-like `videos/<pid>/Visite_1/<pid>_Question_N_<date>_Video.mp4`,
  `annotation.yml` with per-frame labels (frames from 0) and `default-split/{train,val,test}.txt`;
- `affectnet` (`pipeline.synth.affectnet`): still images in either AffectNet layout (`affectnet_format`:
  original or cropped), no videos, for `lwaffect pretrain`.

Every video layout also gets `DIR/synth_truth/<video>.parquet` (per decoded frame and subject: the true face box,
five landmarks and the visible attributes; `pipeline.synth.video.TRUTH_SCHEMA`) and `DIR/synth_manifest.json`
(what was written: videos with frame counts and no-face ranges as 0-based [start, stop) decode indices,
subjects, splits in order, labelled and invalid frame counts per task and split).

The face is scikit-image's astronaut portrait (`pipeline.synth.faces`). Labels are a deterministic function
of what is visible in each frame (the attributes in the truth table):

- valence = 2 * brightness - 1 (brightness sets the face's mean luminance), arousal = 2 * contrast - 1
  (contrast sets its luminance gain); both rounded to 3 decimals. (Scale is not used: an aligned face crop
  removes it.)
- AU k (k-th of `model.tasks.AU_NAMES`) = 1 while mark k, a small yellow dot at a fixed place on the face
  (`synth_faces.MARK_POSITIONS`), is shown.
- EXPR class = tint: 0 Neutral none, 1 Anger red, 2 Disgust orange, 3 Fear yellow, 4 Happiness blue,
  5 Sadness violet, 6 Surprise pink, 7 Other grey (desaturated).
- AH = 1 while the face is grey (tint 7).
- EMI intensities of a clip, over its frames with a face: Admiration = mean brightness, Amusement = mean
  contrast, Determination = mean fraction of the 12 marks shown, Empathic Pain = fraction of frames with
  the blue tint (4), Excitement = fraction with red (1), Joy = fraction with pink (6); 4 decimals.

Aff-Wild2 frames without a face and a few random short runs per subject and task are invalid (-5 for VA,
-1 for AU and EXPR). Attributes vary smoothly (brightness, contrast, position, size) or piecewise over
about half a second (tint, marks); the default set shows every AU both on and off and every EXPR class in
both train and validation. Everything is a deterministic function of the seed.

Harder settings, off by default (the learnability study, `jobs.learnability`, turns them on):
`identities` people made from the one photo (`pipeline.synth.faces.identity`; with three or more, the last
one appears only in validation and test), `overlap` of the label cues (each tint stretch with its own
strength and hue shift, `pipeline.synth.video.overlap_cues`) and `no_face_share`, the share of Aff-Wild2
videos with a faceless stretch of 0.3-0.8 s of their own.

Hard videos (`variants`, Aff-Wild2 layout only; `lwaffect synth --variants` or `--hard`): the hard cases of
`pipeline.synth.hard` (low contrast, darkness, small faces in 1080p, fast motion with motion blur at 60
fps, an occluded face, a face turning to profile, two people crossing), each a validation video with
annotation files after the other videos, named `<index>-<fps>-<W>x<H>-<variant>`, with its variant in the
manifest entry. Their labels follow the face's attributes as everywhere; the scene effects come after.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.tasks import EMI_NAMES
from pipeline.synth.hard import check_variant

LAYOUTS: tuple[str, ...] = ("affwild2", "emi", "ah", "affectnet")
DEFAULT_VIDEOS: dict[str, int] = {"affwild2": 8, "emi": 9, "ah": 8, "affectnet": 0}
DEFAULT_SECONDS: dict[str, float] = {"affwild2": 3.0, "emi": 2.0, "ah": 2.0, "affectnet": 1.0}
AFFECTNET_FORMATS: tuple[str, ...] = ("original", "cropped")  # the two AffectNet layouts
MANIFEST = "synth_manifest.json"
TRUTH_DIR = "synth_truth"
GREY_TINT = 7  # the tint that marks AH frames


@dataclass(frozen=True)
class SynthConfig:
    """What synthetic data set to make."""

    output: Path  # folder to write into (created; files of the same names are replaced)
    layout: str = "affwild2"  # affwild2, emi, ah or affectnet
    videos: int | None = None  # number of videos (clips); None: the layout's default (8, 9, 8)
    seconds: float | None = None  # length of a video; None: the layout's default (3, 2, 2)
    seed: int = 0  # every random choice derives from it: same seed, same data set
    crf: int = 18  # libx264 constant rate factor (lower is better quality)
    preset: str = "veryfast"  # libx264 speed preset
    identities: int = 1  # people made from the one photo; 1: the photo as it is in every video
    overlap: float = 0.0  # 0..1: how much tints vary in strength and hue, so that classes look alike
    no_face_share: float = 0.0  # 0..1: share of Aff-Wild2 videos with a faceless stretch of their own
    # hard videos added to the Aff-Wild2 layout as validation videos, `pipeline.synth.hard.VARIANTS` names
    variants: tuple[str, ...] = ()
    # display rotation of every video (degrees counterclockwise, a multiple of 90): stored turned back, as a
    # phone stores a portrait video (-90); the truth is of the upright frames a player shows
    rotation: int = 0
    images: int = 400  # affectnet layout: images in all (a quarter of them the validation part)
    image_size: int = 160  # affectnet layout: side of the square images (original) or face crops (cropped)
    affectnet_format: str = "original"  # affectnet layout: original (full images, CSV lists) or cropped

    @property
    def num_videos(self) -> int:
        return DEFAULT_VIDEOS[self.layout] if self.videos is None else self.videos

    @property
    def duration(self) -> float:
        return DEFAULT_SECONDS[self.layout] if self.seconds is None else self.seconds

    def check(self) -> None:
        """Raise ValueError on settings that cannot make a data set."""
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; known layouts: {', '.join(LAYOUTS)}")
        if self.layout == "affectnet":
            if self.affectnet_format not in AFFECTNET_FORMATS:
                raise ValueError(f"unknown AffectNet format {self.affectnet_format!r}: original or cropped")
            if self.images < 16 or not 64 <= self.image_size <= 1024:
                raise ValueError(f"affectnet needs 16 images or more of 64 to 1024 px, not {self.images} of "
                                 f"{self.image_size} px")  # fmt: skip
        elif self.num_videos < (0 if self.variants else 1):
            raise ValueError(f"videos must be at least 1 (0 with hard variants), not {self.num_videos}")
        if self.variants:
            if self.layout != "affwild2":
                raise ValueError(f"hard variants are made in the affwild2 layout only, not in {self.layout}")
            for name in self.variants:
                check_variant(name)
        if self.rotation % 90 or not -360 < self.rotation < 360:
            raise ValueError(f"rotation must be a multiple of 90 degrees (-270 to 270), not {self.rotation}")
        if self.rotation and self.layout == "affectnet":
            raise ValueError("rotation turns videos: the affectnet layout holds still images")
        if not 0.5 <= self.duration <= 600:
            raise ValueError(f"seconds must be between 0.5 and 600, not {self.duration}")
        if self.identities < 1:
            raise ValueError(f"identities must be at least 1, not {self.identities}")
        for name in ("overlap", "no_face_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")

    def identity_of(self, number: int, split: str) -> int:
        """The person of subject `number` (0-based): the identities in turn; with three or more, train
        subjects never get the last one, a person seen only in validation and test."""
        n = self.identities
        return number % (n - 1) if n >= 3 and split == "train" else number % n


# --- label functions (see the module docstring) ---------------------------------------------------------


def va_labels(brightness: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """(N,) brightness, (N,) contrast in [0, 1] -> (N, 2) valence, arousal in [-1, 1], 3 decimals."""
    return np.round(np.stack([2 * brightness - 1, 2 * contrast - 1], axis=1), 3)


def au_labels(marks: np.ndarray) -> np.ndarray:
    """(N, 12) bool marks shown -> (N, 12) int 0/1, columns in `model.tasks.AU_NAMES` order."""
    return np.asarray(marks, dtype=np.int64)


def expr_labels(tint: np.ndarray) -> np.ndarray:
    """(N,) tint 0..7 -> (N,) class 0..7 in `model.tasks.EXPR_NAMES` order."""
    return np.asarray(tint, dtype=np.int64)


def ah_labels(tint: np.ndarray) -> np.ndarray:
    """(N,) tint -> (N,) 0/1: 1 where the face is grey."""
    return (np.asarray(tint) == GREY_TINT).astype(np.int64)


def emi_intensities(
    brightness: np.ndarray, contrast: np.ndarray, tint: np.ndarray, marks: np.ndarray
) -> dict:
    """Attributes of a clip's frames with a face -> {EMI name: intensity in [0, 1]}, 4 decimals."""
    values = (
        brightness.mean(),
        contrast.mean(),
        np.asarray(marks, dtype=float).mean(),
        (tint == 4).mean(),
        (tint == 1).mean(),
        (tint == 6).mean(),
    )
    return {name: round(float(v), 4) for name, v in zip(EMI_NAMES, values, strict=True)}


# --- shared by the layout writers -------------------------------------------------------------------------


def rng_for(cfg: SynthConfig, *keys: int) -> np.random.Generator:
    """The random generator of one part of the data set (a video, a subject), from the seed and `keys`."""
    return np.random.default_rng([cfg.seed, *keys])


def tint_plan(segments: list[int], rng: np.random.Generator, classes: int = 8) -> list[list[int]]:
    """Tints for groups of `segments[i]` segments, every class used once before any is used again.

    Spread over one split, this puts every class in the split as soon as it has `classes` segments.
    """
    total = sum(segments)
    order = np.concatenate([rng.permutation(classes) for _ in range(total // classes + 1)])[:total]
    out, start = [], 0
    for count in segments:
        out.append([int(t) for t in order[start : start + count]])
        start += count
    return out
