"""Small fakes and file makers that several test modules share.

- `FakeCache`, `labels_for`: an in-memory feature cache and label arrays for the temporal model's tests.
- `random_maps`: boundary maps shaped like a backbone's.
- `touch`, `write_video`: files of a data set tree; an encoded H.264 (or other codec) video.
- `submission_catalogue`, `submission_predictions`: the test subjects and predictions of the submission tests.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import polars as pl
import torch

from model.tasks import AU_NAMES
from pipeline.datasets.catalogue import Catalogue
from pipeline.synth.video import stored_turned

# ------------------------------------------------------------------------------------------ feature cache

SHAPES = ((2, 2, 2), (3, 1, 1))  # tiny stand-ins for the (64, 28, 28) and (96, 14, 14) maps


class FakeCache:
    """In-memory FeatureCache: map values encode subject number * 1000 + row; counts reads."""

    def __init__(self, frames: dict[str, int], faces: dict[str, np.ndarray] | None = None, shapes=SHAPES):
        self.frames = dict(frames)
        self.faces = faces or {}
        self.shapes = shapes
        self.ids = {s: i for i, s in enumerate(frames)}
        self.read_rows = 0

    def subjects(self) -> list[str]:
        return list(self.frames)

    def num_frames(self, subject: str) -> int:
        return self.frames[subject]

    def read(self, subject: str, start: int = 0, stop: int | None = None, maps: bool = True):
        stop = self.frames[subject] if stop is None else stop
        rows = np.arange(start, stop)
        face = self.faces.get(subject, np.ones(self.frames[subject], bool))[start:stop]
        if not maps:  # the face column only, as FeatureCache.read(maps=False)
            return SimpleNamespace(
                subject=subject, video=subject, index=rows.astype(np.int32), face=face, maps=()
            )
        self.read_rows += len(rows)
        code = (self.ids[subject] * 1000 + rows).astype(np.float16)
        maps = tuple(np.broadcast_to(code[:, None, None, None], (len(rows), *s)).copy() for s in self.shapes)
        return SimpleNamespace(
            subject=subject, video=subject, index=rows.astype(np.int32), face=face, maps=maps
        )


def labels_for(values: np.ndarray, valid: np.ndarray | None = None):
    valid = np.ones(len(values), bool) if valid is None else valid
    return SimpleNamespace(values=values.astype(np.float32), valid=valid)


def random_maps(backbone, batch: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Boundary maps (B, T, C, H, W) shaped like the backbone's, non-negative like ReLU outputs."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, frames, *shape, generator=g) for shape in backbone.boundary_shapes)


# ------------------------------------------------------------------------------------------------ files


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int = 25,
    codec: str = "libx264",
    faststart: bool = False,
    rotation: int = 0,
) -> Path:
    """Encode RGB frames (n, H, W, 3) uint8 to `path`; `faststart` moves the MP4 index to the front;
    `rotation` (degrees counterclockwise) goes into the display matrix and the frames are stored turned back
    by it, as a phone stores a portrait video (lying on its side, -90): a player shows `frames` upright."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = stored_turned(frames[0], rotation).shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            stored = stored_turned(frame, rotation)  # (H, W, 3) as stored
            out.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        out.mux(stream.encode())
    return path


# ------------------------------------------------------------------------------------------- submission

FRAMES = {"1-30-640x360": 4, "2-25-854x480_left": 3, "2-25-854x480_right": 3}  # test subject -> frames


def submission_catalogue(root: Path, task: str = "va", subjects=FRAMES) -> Catalogue:
    """An Aff-Wild2 catalogue whose test split of `task` is `subjects`, in order."""
    cat = Catalogue(root=root, layout="affwild2")
    cat.splits[task] = {"test": list(subjects)}
    return cat


def submission_predictions(task: str, counts=FRAMES, seed: int = 0) -> pl.DataFrame:
    """Random predictions of `task` for frames 1..n of every subject (VA partly out of range)."""
    rng = np.random.default_rng(seed)
    subjects = [s for s, n in counts.items() for _ in range(n)]
    frames = [f for n in counts.values() for f in range(1, n + 1)]
    n = len(frames)
    data = {"video": [s.removesuffix("_left").removesuffix("_right") for s in subjects],
            "subject": subjects, "frame": pl.Series(frames, dtype=pl.Int32)}  # fmt: skip
    if task == "va":
        data |= {"valence": rng.uniform(-1.2, 1.2, n), "arousal": rng.uniform(-1, 1, n)}
    elif task == "au":
        data |= {c: rng.integers(0, 2, n).astype(np.int8) for c in AU_NAMES}
    elif task == "expr":
        data["expression"] = rng.integers(0, 8, n).astype(np.int8)
    elif task == "ah":
        data["ah"] = rng.integers(0, 2, n).astype(np.int8)
    return pl.DataFrame(data)
