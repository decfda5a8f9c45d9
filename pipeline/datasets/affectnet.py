"""AffectNet folders for `lwaffect pretrain`: `read_affectnet(root)` finds the layout and lists the images
of the training and validation parts with their labels.

The two layouts in use (what `pipeline.synth.affectnet` writes; see there for the sources followed):

- `original`: `Manually_Annotated_Images/<dir>/<file>.jpg` with the lists `training.csv` and
  `validation.csv` in the folder itself or in `Manually_Annotated_file_lists/` (as the release ships them).
  Columns `subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression,
  valence, arousal`; a file without the header line is read in that column order. The face is the box.
- `cropped`: `train_set/` and `val_set/`, each `images/<N>.jpg` with `annotations/<N>_exp.npy`,
  `<N>_val.npy`, `<N>_aro.npy` (0-d arrays of a number or of its text) and `<N>_lnd.npy` (not needed here).
  The face is the whole image.

Labels: expression 0..10 (`model.pretrain.AFFECTNET_NAMES`; 8..10 are None, Uncertain, No-Face, kept in the
list and left out of the expression loss and metrics), valence and arousal in [-1, 1] or `VA_NONE` (-2)
where there is none. Anything else, a missing file or a malformed line is an `AffectNetError` naming the
file (and line) and the reason.

May import model (the label names).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.pretrain import (
    AFFECTNET_NAMES,
    CROPPED_DIRS,
    CSV_COLUMNS,
    IMAGES_DIR,
    LIST_FILES,
    LISTS_DIR,
    VA_NONE,
)


class AffectNetError(ValueError):
    """An AffectNet folder that cannot be read: missing parts, malformed lists or annotations."""


@dataclass(frozen=True)
class AffectNetImage:
    """One labelled image."""

    path: Path  # the image file
    box: tuple[int, int, int, int] | None  # face x, y, width, height in image pixels; None: the whole image
    expression: int  # 0..10 (AFFECTNET_NAMES)
    valence: float  # [-1, 1] or VA_NONE
    arousal: float  # [-1, 1] or VA_NONE


@dataclass(frozen=True)
class AffectNetSet:
    """An AffectNet folder: its layout and both parts."""

    root: Path
    layout: str  # original or cropped
    train: list[AffectNetImage]
    validation: list[AffectNetImage]

    def part(self, split: str) -> list[AffectNetImage]:
        return self.train if split == "train" else self.validation


def _list_file(root: Path, name: str) -> Path | None:
    for folder in (root, root / LISTS_DIR):
        if (folder / name).is_file():
            return folder / name
    return None


def read_affectnet(root: Path | str) -> AffectNetSet:
    """The AffectNet folder `root` in either layout (the original when both are there)."""
    root = Path(root)
    if not root.is_dir():
        raise AffectNetError(f"AffectNet folder {root} does not exist")
    if (root / IMAGES_DIR).is_dir() or any(_list_file(root, n) for n in LIST_FILES.values()):
        parts = {}
        for split, name in LIST_FILES.items():
            path = _list_file(root, name)
            if path is None:
                raise AffectNetError(
                    f"AffectNet folder {root}: {name} is missing (looked in {root} and {root / LISTS_DIR})"
                )
            if not (root / IMAGES_DIR).is_dir():
                raise AffectNetError(
                    f"AffectNet folder {root}: {IMAGES_DIR}/ is missing ({name} lists its images)"
                )
            parts[split] = _read_list(path, root / IMAGES_DIR)
        return AffectNetSet(root, "original", parts["train"], parts["validation"])
    if any((root / d).is_dir() for d in CROPPED_DIRS.values()):
        parts = {split: _read_cropped(root / folder) for split, folder in CROPPED_DIRS.items()}
        return AffectNetSet(root, "cropped", parts["train"], parts["validation"])
    raise AffectNetError(
        f"{root} is not an AffectNet folder: expected {IMAGES_DIR}/ with training.csv and validation.csv "
        f"(original layout) or train_set/ and val_set/ with images/ and annotations/ (cropped layout)"
    )


def _labels(where: str, expression: str, valence: str, arousal: str) -> tuple[int, float, float]:
    try:
        e, v, a = int(float(expression)), float(valence), float(arousal)
    except ValueError:
        raise AffectNetError(f"{where}: expression, valence and arousal must be numbers, not "
                             f"{expression!r}, {valence!r}, {arousal!r}") from None  # fmt: skip
    if not 0 <= e < len(AFFECTNET_NAMES) or e != float(expression):
        raise AffectNetError(
            f"{where}: expression must be an integer 0..{len(AFFECTNET_NAMES) - 1}, not {expression!r}"
        )
    for name, x in (("valence", v), ("arousal", a)):
        if x != VA_NONE and not -1.0 <= x <= 1.0:
            raise AffectNetError(f"{where}: {name} must lie in [-1, 1] or be {VA_NONE:g}, not {x}")
    return e, v, a


def _read_list(path: Path, images: Path) -> list[AffectNetImage]:
    """The rows of training.csv / validation.csv."""
    out = []
    with path.open(newline="") as f:
        rows = csv.reader(f)
        for line, row in enumerate(rows, start=1):
            if line == 1 and row and row[0] == CSV_COLUMNS[0]:
                if tuple(c.strip() for c in row[: len(CSV_COLUMNS)]) != CSV_COLUMNS:
                    raise AffectNetError(
                        f"{path} line 1: expected the columns {', '.join(CSV_COLUMNS)}, got {', '.join(row)}"
                    )
                continue
            if not row or not "".join(row).strip():
                continue
            where = f"{path} line {line}"
            if len(row) != len(CSV_COLUMNS):
                raise AffectNetError(f"{where}: expected {len(CSV_COLUMNS)} columns, got {len(row)}")
            try:
                box = tuple(int(float(v)) for v in row[1:5])
            except ValueError:
                raise AffectNetError(f"{where}: the face box must be numbers, not {row[1:5]}") from None
            if box[2] <= 0 or box[3] <= 0:
                raise AffectNetError(f"{where}: the face box {box} has no area")
            e, v, a = _labels(where, *row[6:9])
            image = images / row[0]
            if not image.is_file():
                raise AffectNetError(f"{where}: the image {image} does not exist")
            out.append(AffectNetImage(image, box, e, v, a))  # type: ignore[arg-type]
    if not out:
        raise AffectNetError(f"{path} lists no images")
    return out


def _scalar(path: Path) -> str:
    """The value of a 0-d (or one-element) .npy annotation, as text."""
    if not path.is_file():
        raise AffectNetError(f"annotation {path} is missing")
    try:
        value = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise AffectNetError(f"cannot read annotation {path}: {e}") from None
    if value.size != 1:
        raise AffectNetError(f"annotation {path} holds {value.size} values, not one")
    return str(value.reshape(()).item())


def _read_cropped(folder: Path) -> list[AffectNetImage]:
    """The images of train_set/ or val_set/ with their annotations, by number."""
    images, notes = folder / "images", folder / "annotations"
    for needed in (images, notes):
        if not needed.is_dir():
            raise AffectNetError(
                f"AffectNet folder {folder.parent}: {needed.relative_to(folder.parent)}/ is missing"
            )
    files = sorted((p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")),
                   key=lambda p: (len(p.stem), p.stem))  # fmt: skip
    if not files:
        raise AffectNetError(f"{images} holds no images")
    out = []
    for image in files:
        values = [_scalar(notes / f"{image.stem}_{kind}.npy") for kind in ("exp", "val", "aro")]
        e, v, a = _labels(f"annotations of {image}", *values)
        out.append(AffectNetImage(image, None, e, v, a))
    return out
