"""The synthetic data set in the two AffectNet layouts: still photos of the synthetic face with labels
rendered from what is visible (`lwaffect synth --layout affectnet`, `pipeline.synth.common`).

AffectNet (Mollahosseini et al. 2017) labels each face with an expression 0..10 (`model.pretrain.
AFFECTNET_NAMES`: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None,
9 Uncertain, 10 No-Face) and a valence and arousal in [-1, 1], -2 where there is none (Uncertain, No-Face).
Two layouts are in use; what is written follows the public readers of each (data loaders of AffectNet
projects on GitHub; the official documentation is not public):

- `original` (the release of the full images): `Manually_Annotated_Images/<dir>/<file>.jpg` and the lists
  `training.csv` / `validation.csv` with a header and the columns `subDirectory_filePath` (relative to
  Manually_Annotated_Images), `face_x`, `face_y`, `face_width`, `face_height` (the face box, integer
  pixels), `facial_landmarks` (68 points `x1;y1;x2;y2;...` in image pixels, iBUG order, two decimals),
  `expression`, `valence`, `arousal`. A few images of classes 8..10 are included (8 with valence and
  arousal, 9 and 10 with -2; 10 shows no face at all).
- `cropped` (the face-crop release): `train_set/images/<N>.jpg` and `train_set/annotations/<N>_exp.npy`,
  `<N>_val.npy`, `<N>_aro.npy` (0-d arrays of the value as a string, as that release stores them, which its
  readers turn into numbers with `int(...)` / `float(...)`) and `<N>_lnd.npy` (136 floats, x and y in
  turn, crop pixels); `val_set/` likewise. Classes 0..7 only, as that release has.

What is visible decides the labels, as in the video sets: the expression is the face's tint, the tint the
Aff-Wild2 set uses for the same emotion (`AFFECTNET_TINT`), valence = 2 * brightness - 1, arousal = 2 *
contrast - 1 (`va_labels`). Class 8 shows all 12 marks over a random tint. The training part has
AffectNet's imbalance in small (`TRAIN_SHARES`: more Happy and Neutral); the validation part is balanced
as AffectNet's is. With three or more identities the last one is in validation only.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from model.pretrain import (
    AFFECTNET_CLASSES,
    AFFECTNET_NAMES,
    CROPPED_DIRS,
    CSV_COLUMNS,
    IMAGES_DIR,
    LIST_FILES,
    VA_NONE,
)
from pipeline.io import write_bytes, write_text
from pipeline.synth.common import SynthConfig, rng_for, va_labels
from pipeline.synth.faces import FaceState, make_background, render_face, sprite_size

# tint (pipeline.synth.faces.TINT_HUES) showing each AffectNet class 0..7: the Aff-Wild2 set's cue of the
# same emotion (Neutral none, Happy blue, Sad violet, Surprise pink, Fear yellow, Disgust orange, Anger red,
# Contempt grey as Aff-Wild2's Other)
AFFECTNET_TINT: tuple[int, ...] = (0, 4, 5, 6, 3, 2, 1, 7)
TRAIN_SHARES: tuple[float, ...] = (0.18, 0.26, 0.1, 0.08, 0.08, 0.1, 0.1, 0.1)  # of classes 0..7 in training
EXTRA_SHARE = 0.04  # share of each of the classes 8, 9, 10 in the original layout
VALIDATION_SHARE = 0.25  # of the images

# iBUG 68-point layout in face-box fractions (u, v): jaw, brows, nose, eyes, outer and inner lips; mapped
# onto each face by the affine map that takes its five points (`FIVE`) to the face's five landmarks
_JAW = [(0.5 - 0.5 * np.cos(np.pi * k / 16), 0.25 + 0.75 * np.sin(np.pi * k / 16)) for k in range(17)]
_BROWS = [(0.12 + 0.075 * k, 0.2 - 0.03 * np.sin(np.pi * k / 4)) for k in range(5)]
_BROWS += [(0.58 + 0.075 * k, 0.2 - 0.03 * np.sin(np.pi * k / 4)) for k in range(5)]
_NOSE = [(0.5, 0.33 + 0.083 * k) for k in range(4)] + [(0.4 + 0.05 * k, 0.64 + 0.02 * (k in (1, 2, 3)))
                                                        for k in range(5)]  # fmt: skip
_EYE = [(-0.08, 0.0), (-0.03, -0.03), (0.03, -0.03), (0.08, 0.0), (0.03, 0.02), (-0.03, 0.02)]
_EYES = [(0.3 + du, 0.38 + dv) for du, dv in _EYE] + [(0.7 + du, 0.38 + dv) for du, dv in _EYE]
_LIPS = [(0.35, 0.78), (0.4, 0.75), (0.45, 0.73), (0.5, 0.74), (0.55, 0.73), (0.6, 0.75), (0.65, 0.78),
         (0.6, 0.82), (0.55, 0.85), (0.5, 0.86), (0.45, 0.85), (0.4, 0.82), (0.37, 0.78), (0.45, 0.77),
         (0.5, 0.77), (0.55, 0.77), (0.63, 0.78), (0.55, 0.8), (0.5, 0.81), (0.45, 0.8)]  # fmt: skip
LANDMARKS_68 = np.array(_JAW + _BROWS + _NOSE + _EYES + _LIPS, dtype=np.float64)  # (68, 2)
# the five MTCNN points in the 68 layout: eye centres, nose tip (30), mouth corners (48, 54)
FIVE = np.stack([LANDMARKS_68[36:42].mean(0), LANDMARKS_68[42:48].mean(0), LANDMARKS_68[30],
                 LANDMARKS_68[48], LANDMARKS_68[54]])  # fmt: skip


def landmarks_68(five: np.ndarray) -> np.ndarray:
    """(5, 2) eye, eye, nose, mouth, mouth points -> (68, 2) iBUG points (least-squares affine fit)."""
    a = np.column_stack([FIVE, np.ones(5)])  # (5, 3)
    coef, *_ = np.linalg.lstsq(a, five, rcond=None)  # (3, 2)
    return np.column_stack([LANDMARKS_68, np.ones(68)]) @ coef


def _classes(n: int, shares: tuple[float, ...], rng: np.random.Generator) -> list[int]:
    """`n` classes in proportion to `shares` (largest remainders; every class once when n allows), shuffled."""
    p = np.asarray(shares) / sum(shares)
    counts = np.floor(p * n).astype(int)
    if n >= len(p):
        counts = np.maximum(counts, 1)
    while counts.sum() < n:
        counts[np.argmax(p * n - counts)] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    return [int(c) for c in rng.permutation(np.repeat(np.arange(len(p)), counts))]


def _plan(cfg: SynthConfig) -> dict[str, list[int]]:
    """The expression of every image of each split (8..10 only in the original layout)."""
    n_val = max(8, round(cfg.images * VALIDATION_SHARE))
    n_train = max(8, cfg.images - n_val)
    extra = (EXTRA_SHARE,) * 3 if cfg.affectnet_format == "original" else ()
    plans = {}
    for s, (split, n) in enumerate((("train", n_train), ("validation", n_val))):
        shares = TRAIN_SHARES if split == "train" else (1.0,) * AFFECTNET_CLASSES
        main = sum(shares)
        plans[split] = _classes(
            n, (*shares, *(e * main / (1 - 3 * e) for e in extra)), rng_for(cfg, 7000 + s)
        )
    return plans


def _render(cfg: SynthConfig, expression: int, size: int, person: int, rng: np.random.Generator):
    """One image (size, size, 3) uint8 with its face box (4,) and 68 landmarks (68, 2), and its labels."""
    image = make_background(size, size, rng, textured=bool(rng.integers(2)))
    brightness, contrast = float(rng.uniform()), float(rng.uniform())
    valence, arousal = (float(v) for v in va_labels(np.array([brightness]), np.array([contrast]))[0])
    height = size * rng.uniform(0.4, 0.5)
    left, top, right, bottom = sprite_size(height, person)
    cx = rng.uniform(left + 1, size - right - 1) if size - right - 1 > left + 1 else size / 2
    cy = rng.uniform(top + 1, size - bottom - 1) if size - bottom - 1 > top + 1 else size / 2
    tint = AFFECTNET_TINT[expression] if expression < AFFECTNET_CLASSES else int(rng.integers(8))
    marks = (expression == 8,) * 12
    state = FaceState(cx=cx, cy=cy, height=height, brightness=brightness, contrast=contrast, tint=tint,
                      marks=marks, identity=person)  # fmt: skip
    if expression == 10:  # no face: the detector's box falls on the background
        box = np.array([cx - height * 0.4, cy - height / 2, cx + height * 0.4, cy + height / 2])
        five = FIVE * [box[2] - box[0], box[3] - box[1]] + box[:2]
    else:
        box, five = render_face(image, state)
    if expression in (9, 10):
        valence = arousal = VA_NONE
    return image, box, landmarks_68(five), valence, arousal


def _jpeg(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=92)
    return out.getvalue()


def _npy(value: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, value)
    return out.getvalue()


def _square(box: np.ndarray, size: int, margin: float) -> tuple[int, int, int, int]:
    """The square around a face box (4,) x1, y1, x2, y2, `margin` of its side added, inside the image."""
    side = min(max(box[2] - box[0], box[3] - box[1]) * (1 + margin), size)
    x = min(max((box[0] + box[2] - side) / 2, 0), size - side)
    y = min(max((box[1] + box[3] - side) / 2, 0), size - side)
    return int(round(x)), int(round(y)), int(round(side)), int(round(side))


def write_affectnet(cfg: SynthConfig, say: Callable[[str], None]) -> dict:
    """Write the AffectNet layout `cfg.affectnet_format` under `cfg.output`; the manifest fields."""
    plans = _plan(cfg)
    counts: dict[str, dict[str, int]] = {}
    number = 0
    for s, (split, plan) in enumerate(plans.items()):
        rows = [",".join(CSV_COLUMNS)]
        for i, expression in enumerate(plan):
            rng = rng_for(cfg, 8000 + s, i)
            person = cfg.identity_of(i, split)
            big = cfg.image_size if cfg.affectnet_format == "original" else 2 * cfg.image_size
            image, box, points, valence, arousal = _render(cfg, expression, big, person, rng)
            if cfg.affectnet_format == "original":
                name = f"{100 + i % 7}/{rng.bytes(20).hex()}.jpg"
                write_bytes(cfg.output / IMAGES_DIR / name, _jpeg(image))
                x, y, w, h = _square(box, big, 0.1)
                marks = ";".join(f"{v:.2f}" for v in points.ravel())
                rows.append(f"{name},{x},{y},{w},{h},{marks},{expression},{valence:.6f},{arousal:.6f}")
            else:  # the face crop (the box and a tenth around it) at image_size
                x, y, w, h = _square(box, big, 0.1)
                crop = Image.fromarray(image).crop((x, y, x + w, y + h))
                crop = crop.resize((cfg.image_size, cfg.image_size), Image.Resampling.BILINEAR)
                points = (points - [x, y]) * cfg.image_size / w
                root = cfg.output / CROPPED_DIRS[split]
                write_bytes(root / "images" / f"{number}.jpg", _jpeg(np.asarray(crop)))
                for suffix, value in (
                    ("exp", f"{expression}"),
                    ("val", f"{valence:.6f}"),
                    ("aro", f"{arousal:.6f}"),
                ):
                    write_bytes(root / "annotations" / f"{number}_{suffix}.npy", _npy(np.array(value)))
                write_bytes(
                    root / "annotations" / f"{number}_lnd.npy", _npy(points.ravel().astype(np.float64))
                )
            number += 1
        if cfg.affectnet_format == "original":
            write_text(cfg.output / LIST_FILES[split], "\n".join(rows) + "\n")
        counts[split] = {AFFECTNET_NAMES[c]: plan.count(c) for c in sorted(set(plan))}
        say(f"{split}: {len(plan)} images ({cfg.affectnet_format} layout)")
    manifest: dict[str, Any] = {"format": cfg.affectnet_format, "image_size": cfg.image_size,
                                "images": {split: len(plan) for split, plan in plans.items()},
                                "classes": counts, "videos": [], "subjects": []}  # fmt: skip
    return manifest
