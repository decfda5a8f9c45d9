"""Synthetic benchmark videos: real H.264 files of a real moving face, with the true box of every frame.

The default set (`make_videos`) is made by the synthetic data set's renderer (`pipeline.synth.video`):
scikit-image's astronaut portrait on a textured background, moving and changing size on smooth paths,
encoded with libx264 (yuv420p) through PyAV, so that decoding costs what it costs for a camera video of that
size. A stretch in the middle (`BenchVideoSpec.gap` of the frames) has no face, as when a person leaves the
picture. The hard set (`make_hard_videos`) is one video per hard variant of `pipeline.synth.hard` (low
contrast, darkness, small faces in 1080p, fast motion at 60 fps, occlusion, a turn to profile, two people
crossing), each at its own size and frame rate. The true face box and five landmarks of every subject and
frame come back with each file; the face stage is scored against them (`jobs.bench.scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.synth.hard import HARD, write_hard
from pipeline.synth.video import make_track, write_video

RESOLUTIONS = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


@dataclass(frozen=True)
class BenchVideoSpec:
    """One benchmark video."""

    width: int = 1280  # frame width in pixels
    height: int = 720  # frame height in pixels
    seconds: float = 10.0  # duration
    fps: int = 30  # frame rate
    seed: int = 0  # background colours and the face's path
    gap: float = 0.1  # fraction of the frames, in the middle of the video, without a face

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))


@dataclass(frozen=True)
class SubjectTruth:
    """Where one subject's face is in every frame of a video."""

    position: str  # main, left or right (the face stage's subject position)
    face: np.ndarray  # (n,) bool: the frame shows the face
    boxes: np.ndarray  # (n, 4) float true face box x1, y1, x2, y2 in frame pixels (NaN where no face)
    landmarks: np.ndarray  # (n, 5, 2) float true landmarks (NaN where no face)


@dataclass(frozen=True)
class BenchVideo:
    """A written benchmark video and its truth."""

    path: Path  # the .mp4 file
    spec: BenchVideoSpec  # what was asked for (size, length, frame rate, seed)
    truth: dict[str, SubjectTruth]  # subject name -> its truth; one subject unless two people are shown
    variant: str = "default"  # the hard variant (pipeline.synth.hard), or "default"

    @property
    def frames(self) -> int:
        return len(next(iter(self.truth.values())).face)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def subjects(self) -> list[tuple[str, str]]:
        """(subject, position) of each subject, as the face stage takes them."""
        return [(name, t.position) for name, t in self.truth.items()]


def truth_of(table: pa.Table, stem: str) -> dict[str, SubjectTruth]:
    """The per-subject truth of a video from its `pipeline.synth.video.TRUTH_SCHEMA` table (rows of a
    subject in frame order); positions from the subject names (`<stem>_left`, `<stem>_right`, else main)."""
    out = {}
    for subject in dict.fromkeys(table["subject"].to_pylist()):
        rows = table.filter(pc.equal(table["subject"], subject))
        n = rows.num_rows
        boxes = np.stack([rows[c].to_numpy() for c in ("x1", "y1", "x2", "y2")], axis=1).astype(np.float64)
        landmarks = rows["landmarks"].combine_chunks().flatten().to_numpy().reshape(n, 5, 2)
        face = rows["face"].to_numpy(zero_copy_only=False).astype(bool)
        position = (
            subject.removeprefix(f"{stem}_") if subject in (f"{stem}_left", f"{stem}_right") else "main"
        )
        out[subject] = SubjectTruth(position, face, boxes, landmarks)
    return out


def resolution(name: str) -> tuple[int, int]:
    """(width, height) of a resolution name such as "720p"."""
    try:
        return RESOLUTIONS[name]
    except KeyError:
        raise ValueError(f"unknown resolution {name!r}; known: {', '.join(RESOLUTIONS)}") from None


def make_video(path: Path, spec: BenchVideoSpec) -> BenchVideo:
    """Render and encode one video to `path` (H.264 in MP4); returns it with its truth."""
    rng = np.random.default_rng(spec.seed)
    n = spec.frames
    gap_start = round(n * (0.5 - spec.gap / 2))
    gap = [(gap_start, gap_start + round(n * spec.gap))] if spec.gap > 0 else []
    track = make_track(n, spec.fps, (spec.width, spec.height), (0, spec.width), [0], rng, absent=gap)
    truth = write_video(path, spec.fps, (spec.width, spec.height), {path.stem: track}, rng)
    return BenchVideo(path=path, spec=spec, truth=truth_of(truth, path.stem))


def make_videos(folder: Path, count: int, spec: BenchVideoSpec, prefix: str = "bench") -> list[BenchVideo]:
    """`count` videos of `spec` (seeds spec.seed, spec.seed + 1, ...) named `<prefix>-<i>-<W>x<H>.mp4`."""
    return [
        make_video(folder / f"{prefix}-{i}-{spec.width}x{spec.height}.mp4", replace(spec, seed=spec.seed + i))
        for i in range(count)
    ]


def make_hard_videos(
    folder: Path, variants: tuple[str, ...], seconds: float, seed: int = 0
) -> list[BenchVideo]:
    """One video per hard variant, `seconds` long, named `hard-<variant>-<W>x<H>.mp4` (`pipeline.synth.hard`;
    the seed picks paths, people and tints: the same seed, the same videos)."""
    out = []
    for variant in variants:
        v = HARD[variant]
        path = folder / f"hard-{variant}-{v.width}x{v.height}.mp4"
        table = write_hard(path, variant, seconds, seed)
        spec = BenchVideoSpec(
            width=v.width, height=v.height, seconds=seconds, fps=v.fps, seed=seed, gap=v.gap
        )
        out.append(BenchVideo(path=path, spec=spec, truth=truth_of(table, path.stem), variant=variant))
    return out
