"""One synthetic video: per-frame face attributes over time, the rendered frames, the H.264 file, the truth.

A `Track` holds what one face looks like in every frame (`pipeline.synth.faces.FaceState` fields plus
whether it is visible). Continuous attributes (position, size, brightness, contrast) follow smooth curves
through random knots; tint and marks are piecewise constant over segments of about half a second. With
`overlap` > 0 each tint segment also gets its own strength and hue shift (`overlap_cues`), so that
neighbouring tints, weak tints and no tint look alike more often.
`write_video` renders every frame (a static background plus one or two faces), encodes it with PyAV
(libx264, yuv420p, an exact integer frame rate) under a temporary name, checks the frame count, renames the
file into place and returns the truth rows of every frame and subject. The encoder runs `ENCODE_THREADS`
threads on every machine: x264's bitstream depends on its thread count, which it otherwise takes from the
CPUs the process may use, so the same seed gave other files (and other scores) on a machine with more cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa

from pipeline.io import atomic_path
from pipeline.synth.faces import MARK_POSITIONS, FaceState, make_background, render_face, sprite_size

NUM_MARKS = len(MARK_POSITIONS)
ENCODE_THREADS = 2  # x264 threads of every synthetic video (the files a 2-core machine wrote before)
FACE_HEIGHT = (0.26, 0.44)  # face box height as a fraction of the frame height: smallest, largest
TRUTH_SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("subject", pa.string()),
        ("frame", pa.int32()),  # 1-based frame number (annotation line after the header)
        ("index", pa.int32()),  # 0-based decode index
        ("face", pa.bool_()),  # the subject's face is visible
        ("x1", pa.float32()),  # true face box in full-frame pixels; NaN without a face
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("landmarks", pa.list_(pa.float32(), 10)),  # eyes, nose, mouth corners: x, y each; NaN without face
        ("brightness", pa.float32()),  # 0..1; NaN without a face
        ("contrast", pa.float32()),  # 0..1; NaN without a face
        ("scale", pa.float32()),  # face box height / frame height; NaN without a face
        ("tint", pa.int8()),  # 0..7; -1 without a face
        ("marks", pa.list_(pa.bool_(), NUM_MARKS)),  # the 12 marks shown; all False without a face
    ]
)


@dataclass
class Track:
    """What one face looks like in every frame of a video; arrays of length `frames`."""

    face: np.ndarray  # (n,) bool: visible
    cx: np.ndarray  # (n,) float: face box centre x, frame pixels
    cy: np.ndarray  # (n,) float: face box centre y, frame pixels
    height: np.ndarray  # (n,) float: face box height, frame pixels
    brightness: np.ndarray  # (n,) float in [0, 1]
    contrast: np.ndarray  # (n,) float in [0, 1]
    tint: np.ndarray  # (n,) int 0..7
    marks: np.ndarray  # (n, 12) bool
    identity: int = 0  # the person (pipeline.synth.faces.identity)
    strength: np.ndarray | None = None  # (n,) factor of the tint's strength; None: 1 everywhere
    hue_shift: np.ndarray | None = None  # (n,) degrees added to the tint's hue; None: 0 everywhere
    yaw: np.ndarray | None = None  # (n,) degrees the head is turned; None: frontal everywhere

    @property
    def frames(self) -> int:
        return len(self.face)

    def state(self, i: int) -> FaceState:
        return FaceState(
            cx=float(self.cx[i]),
            cy=float(self.cy[i]),
            height=float(self.height[i]),
            brightness=float(self.brightness[i]),
            contrast=float(self.contrast[i]),
            tint=int(self.tint[i]),
            marks=tuple(bool(m) for m in self.marks[i]),
            identity=self.identity,
            strength=1.0 if self.strength is None else float(self.strength[i]),
            hue_shift=0.0 if self.hue_shift is None else float(self.hue_shift[i]),
            yaw=0.0 if self.yaw is None else float(self.yaw[i]),
        )


def smooth_curve(n: int, fps: float, rng: np.random.Generator, knot_s: float) -> np.ndarray:
    """(n,) values in [0, 1] through knots every ~`knot_s` seconds, spread over the whole range."""
    knots = max(2, int(np.ceil(n / (knot_s * fps))) + 1)
    values = (rng.permutation(knots) + rng.uniform(0.0, 1.0, knots)) / knots  # one knot per stratum
    t = np.arange(n) / max(n - 1, 1) * (knots - 1)
    i = np.clip(np.floor(t).astype(int), 0, knots - 2)
    f = t - i
    f = f * f * (3 - 2 * f)  # smoothstep between knots
    return values[i] * (1 - f) + values[i + 1] * f


def segment_count(frames: int, fps: float, segment_s: float = 0.6, least: int = 4) -> int:
    """Number of piecewise-constant segments of about `segment_s` seconds, at least `least`."""
    return max(least, round(frames / (segment_s * fps)))


def segment_bounds(frames: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count + 1,) increasing frame boundaries from 0 to `frames`, roughly equal with some jitter."""
    count = min(count, frames)
    bounds = np.linspace(0, frames, count + 1)
    jitter = rng.uniform(-0.2, 0.2, count - 1) * frames / count
    bounds[1:-1] += jitter
    return np.round(bounds).astype(int)


def piecewise(frames: int, values: Sequence[int] | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(frames,) array holding values[k] over the k-th of len(values) segments."""
    bounds = segment_bounds(frames, len(values), rng)
    return np.repeat(np.asarray(values)[: len(bounds) - 1], np.diff(bounds))


def make_marks(frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(frames, 12) bool: each mark on and off in its own segments; each is both on and off somewhere."""
    marks = np.zeros((frames, NUM_MARKS), dtype=bool)
    for k in range(NUM_MARKS):
        count = segment_count(frames, fps, segment_s=rng.uniform(0.4, 0.9), least=2)
        states = rng.random(count) < rng.uniform(0.3, 0.6)
        if count >= 2 and (states.all() or not states.any()):
            states[rng.integers(count)] ^= True
        marks[:, k] = piecewise(frames, states, rng)
    return marks


def overlap_cues(tint: np.ndarray, overlap: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (n,) strength factor and hue shift of the tint, constant over each run of one tint: the
    strength drawn from [1 - 0.6 overlap, 1], the hue shift from +-25 overlap degrees."""
    starts = np.flatnonzero(np.r_[True, tint[1:] != tint[:-1]])
    runs = np.diff(np.r_[starts, len(tint)])
    strength = rng.uniform(1 - 0.6 * overlap, 1.0, len(starts))
    shift = rng.uniform(-25 * overlap, 25 * overlap, len(starts))
    return np.repeat(strength, runs), np.repeat(shift, runs)


def make_track(
    frames: int,
    fps: float,
    size: tuple[int, int],
    region: tuple[int, int],
    tints: Sequence[int],
    rng: np.random.Generator,
    absent: Sequence[tuple[int, int]] = (),
    identity: int = 0,
    face_height: tuple[float, float] = FACE_HEIGHT,
    move_s: tuple[float, float] = (1.2, 1.6),
) -> Track:
    """A face of person `identity` inside columns [region[0], region[1]) of a `size` = (width, height) frame.

    `tints` holds the tint of each segment (the tint changes len(tints) - 1 times); `absent` lists [start,
    stop) frame ranges without the face. The face box height moves between `face_height` fractions of the
    frame height; the path through the frame has a knot every `move_s` seconds in x and in y (shorter:
    faster motion).
    """
    width, height = size
    face = np.ones(frames, dtype=bool)
    for start, stop in absent:
        face[start:stop] = False
    scale = smooth_curve(frames, fps, rng, knot_s=1.5)
    box_h = height * (face_height[0] + (face_height[1] - face_height[0]) * scale)
    extent = np.array([sprite_size(h, identity) for h in box_h])  # (n, 4): left, top, right, bottom
    x_lo, x_hi = region[0] + extent[:, 0] + 2, region[1] - extent[:, 2] - 2
    y_lo, y_hi = extent[:, 1] + 2, height - extent[:, 3] - 2
    if (x_hi < x_lo).any() or (y_hi < y_lo).any():
        raise ValueError(f"a {width}x{height} frame is too small for the face in columns {region}")
    u, v = smooth_curve(frames, fps, rng, knot_s=move_s[0]), smooth_curve(frames, fps, rng, knot_s=move_s[1])
    return Track(
        face=face,
        cx=x_lo + u * (x_hi - x_lo),
        cy=y_lo + v * (y_hi - y_lo),
        height=box_h,
        brightness=smooth_curve(frames, fps, rng, knot_s=0.8),
        contrast=smooth_curve(frames, fps, rng, knot_s=0.9),
        tint=piecewise(frames, tints, rng).astype(np.int64),
        marks=make_marks(frames, fps, rng),
        identity=identity,
    )


def _truth_table(
    video: str, subject: str, track: Track, boxes: np.ndarray, landmarks: np.ndarray, frame_height: int
) -> pa.Table:
    """Truth rows of one subject; boxes (n, 4) and landmarks (n, 10) are NaN where there is no face."""
    n, face = track.frames, track.face
    nan = np.float32("nan")
    columns = {
        "video": [video] * n,
        "subject": [subject] * n,
        "frame": np.arange(1, n + 1, dtype=np.int32),
        "index": np.arange(n, dtype=np.int32),
        "face": face,
        **{k: boxes[:, j].astype(np.float32) for j, k in enumerate(("x1", "y1", "x2", "y2"))},
        "landmarks": pa.FixedSizeListArray.from_arrays(pa.array(landmarks.astype(np.float32).ravel()), 10),
        "brightness": np.where(face, track.brightness, nan).astype(np.float32),
        "contrast": np.where(face, track.contrast, nan).astype(np.float32),
        "scale": ((boxes[:, 3] - boxes[:, 1]) / frame_height).astype(np.float32),
        "tint": np.where(face, track.tint, -1).astype(np.int8),
        "marks": pa.FixedSizeListArray.from_arrays(
            pa.array((track.marks & face[:, None]).ravel()), NUM_MARKS
        ),
    }
    return pa.table(columns, schema=TRUTH_SCHEMA)


# draws frame i into an (H, W, 3) uint8 image in place; the box (4,) and landmarks (5, 2) of each face shown
Draw = Callable[[np.ndarray, int], dict[str, tuple[np.ndarray, np.ndarray]]]


def draw_faces(
    image: np.ndarray, subjects: dict[str, Track], i: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each subject's face as its track says in frame `i`, drawn into `image` in order (later on top)."""
    return {name: render_face(image, track.state(i)) for name, track in subjects.items() if track.face[i]}


def stored_turned(image: np.ndarray, rotation: int) -> np.ndarray:
    """An upright frame (H, W, 3) as a video displayed turned `rotation` degrees counterclockwise stores it:
    turned back (a phone's portrait video, -90, is stored lying on its side); contiguous, for the encoder."""
    return np.ascontiguousarray(np.rot90(image, -(rotation // 90)))


def write_video(
    path: Path,
    fps: int,
    size: tuple[int, int],
    subjects: dict[str, Track],
    rng: np.random.Generator,
    textured: bool = True,
    crf: int = 18,
    preset: str = "veryfast",
    draw: Draw | None = None,
    rotation: int = 0,
) -> pa.Table:
    """Render and encode the video of `subjects` (subject name -> track) to `path`; its truth table.

    `draw` renders frame i onto a copy of the background (default `draw_faces`: each visible face as its
    track says); `pipeline.synth.hard` passes its own, with scene effects. The frame count of the written
    container is checked against the frames rendered. `rotation` (a multiple of 90 degrees, counterclockwise)
    goes into the container's display matrix and the frames are stored turned back by it, so that a player
    shows the `size` frames upright that the truth describes.
    """
    draw = draw or (lambda image, i: draw_faces(image, subjects, i))
    width, height = size
    frames = next(iter(subjects.values())).frames
    background = make_background(height, width, rng, textured)
    boxes = {name: np.full((frames, 4), np.nan) for name in subjects}
    points = {name: np.full((frames, 10), np.nan) for name in subjects}
    with atomic_path(path) as partial:
        with av.open(partial, "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stored = (height, width) if rotation // 90 % 2 else (width, height)
            stream.width, stream.height, stream.pix_fmt = *stored, "yuv420p"
            stream.options = {"crf": str(crf), "preset": preset, "threads": str(ENCODE_THREADS)}
            if rotation:
                stream.set_display_rotation(rotation)
            for i in range(frames):
                image = background.copy()  # (H, W, 3) uint8
                for name, (box, landmarks) in draw(image, i).items():
                    boxes[name][i], points[name][i] = box, landmarks.ravel()
                frame = av.VideoFrame.from_ndarray(stored_turned(image, rotation), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        with av.open(partial) as container:
            written = container.streams.video[0].frames
        if written != frames:
            raise RuntimeError(f"{partial}: container holds {written} frames, {frames} were encoded")
    return pa.concat_tables(
        _truth_table(path.stem, name, track, boxes[name], points[name], height)
        for name, track in subjects.items()
    )
