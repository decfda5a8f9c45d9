"""Hard cases of the synthetic face video: the faces a face stage misses in the wild, with exact truth.

Each variant (`HARD`, names in `VARIANTS`) is one video of its own size and frame rate:

- `low_contrast` (854x480): faces of low contrast on a washed-out picture (the frame pulled towards grey);
- `dark` (1280x720): a dim scene (the frame darkened to about a third) with sensor noise, darker faces;
- `small` (1920x1080): faces 8-15 % of the frame height (about 90-160 px);
- `fast` (1280x720 at 60 fps): a face crossing the frame in about half a second, motion-blurred (each
  frame is the mean of renders over its exposure, half the frame interval; the true box is the one at
  the middle of the exposure);
- `occluded` (640x360): an object (a soft-edged ellipse) moving in front of the lower face, about 8-20 %
  of the face box;
- `profile` (1280x720): the head turning from frontal to 70 degrees (`pipeline.synth.faces.turn`); past
  about 60 degrees the far side of the face is out of sight, and towards 70 MTCNN loses the face;
- `crossing` (1280x720): two people passing each other, one in front of the other (larger and a little
  lower); `_left` is the one who starts on the left and ends on the right. While the one in front hides
  more than `HIDDEN` (70 %) of the other's face box, that face counts as not shown (it is drawn, what
  shows of it is too little to be a face: a box there would hold the other person's face);
- `edge` (640x360): a close-up near the frame's left edge: the face leans out until 40 % of its box is
  past the edge, stays there a while, comes back, then leaves the picture quickly (`EDGE_PATH`).
  The truth box is the whole face's, past the edge too; while more than `GONE` (half) of the box is past
  the edge, the face counts as not shown (it is drawn, what shows of it is too little to be a face).
- `tiny` (1920x1080): a wide shot, faces 3-5 % of the frame height (about 32-54 px), too small for
  detection at `FaceConfig.search_size`; the person keeps to a part of the picture (`roam`: a face
  crossing the whole frame in a second and a half would move one to two face widths per frame).

Every variant uses other identities than the photo (`pipeline.synth.faces.identity`), tinted faces, and
the truth of `pipeline.synth.video.TRUTH_SCHEMA`: the box and landmarks of every subject in every frame
(the face box as drawn: moved, scaled, turned), frames without a face (`low_contrast`, `dark` and
`occluded` have a faceless stretch in the middle). Scene effects (contrast, darkness, noise, the occluder)
come after the faces are drawn; the face's attributes (and so its labels) are those before them.

`hard_scene` makes the tracks and the drawing of a variant (the Aff-Wild2 writer adds labels); `write_hard`
writes one video and returns its truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.synth.faces import face_box, render_face, sprite_cover, sprite_size
from pipeline.synth.video import Draw, Track, make_track, smooth_curve, write_video

VARIANTS: tuple[str, ...] = (
    "low_contrast", "dark", "small", "fast", "occluded", "profile", "crossing", "edge", "tiny"
)  # fmt: skip
OCCLUDER_COLOUR = np.array([0.16, 0.30, 0.36], np.float32)  # a muted blue-grey: no skin, no face
GONE = 0.5  # edge: a face with more than this share of its box past the frame's edge counts as not shown
# edge: the share of the face box past the left edge at these fractions of the video (smoothstep between)
EDGE_PATH = ((0.0, -0.8), (0.3, 0.4), (0.5, 0.4), (0.65, -0.3), (0.7, -0.3), (0.75, 1.3), (1.0, 1.3))
HIDDEN = 0.7  # crossing: a face whose box is hidden more than this by the one in front counts as not shown
BACK_SCALE = 0.85  # crossing: face size of the person behind, relative to the one in front


@dataclass(frozen=True)
class HardVariant:
    """How one hard video looks."""

    fps: int  # frame rate
    width: int  # frame width in pixels
    height: int  # frame height in pixels
    face_height: tuple[float, float] = (0.24, 0.38)  # face box height range, fractions of the frame height
    move_s: tuple[float, float] = (1.2, 1.6)  # seconds between knots of the face's path in x and y
    gap: float = 0.0  # share of the frames, around the middle, without a face
    brightness: tuple[float, float] = (0.0, 1.0)  # range the face's brightness attribute is squeezed into
    contrast: tuple[float, float] = (0.0, 1.0)  # range the face's contrast attribute is squeezed into
    scene_contrast: float = 1.0  # the frame's contrast around mid grey (1: as drawn)
    scene_gain: float = 1.0  # the frame's brightness factor (1: as drawn)
    noise: float = 0.0  # standard deviation of Gaussian sensor noise, in 8-bit levels
    blur: int = 1  # renders averaged over the exposure (odd; 1: no motion blur)
    shutter: float = 0.5  # exposure time as a fraction of the frame interval (motion blur)
    occluder: bool = False  # an ellipse in front of part of the face
    yaw: float = 0.0  # the head's turn at the end of the video, degrees (0: frontal throughout)
    crossing: bool = False  # two people passing each other (subjects left and right)
    apart: float = 0.08  # crossing: vertical distance of the two face centres, fraction of the frame height
    edge: bool = False  # the face cut by the frame's left edge, leaving the frame and coming back (EDGE_PATH)
    # share of its path's span the face keeps to, about a point of it (1: the whole frame); a face moves
    # at most about this share of the frame per `move_s` seconds
    roam: float = 1.0


HARD: dict[str, HardVariant] = {
    "low_contrast": HardVariant(30, 854, 480, gap=0.15, contrast=(0.0, 0.2), scene_contrast=0.3, noise=1.0),
    "dark": HardVariant(30, 1280, 720, (0.18, 0.3), gap=0.15, brightness=(0.0, 0.4), scene_gain=0.3, noise=2.5),
    "small": HardVariant(30, 1920, 1080, (0.08, 0.15)),
    "fast": HardVariant(60, 1280, 720, (0.22, 0.32), move_s=(0.45, 0.6), blur=5),
    "occluded": HardVariant(25, 640, 360, (0.3, 0.4), gap=0.1, occluder=True),
    "profile": HardVariant(30, 1280, 720, (0.28, 0.38), move_s=(2.0, 2.5), yaw=70.0),
    "crossing": HardVariant(30, 1280, 720, (0.19, 0.21), crossing=True),
    "edge": HardVariant(30, 640, 360, (0.36, 0.42), edge=True),
    "tiny": HardVariant(30, 1920, 1080, (0.03, 0.05), roam=0.15),
}  # fmt: skip


def positions(variant: str) -> tuple[str, ...]:
    """The subject positions of a variant's video: ("left", "right") for `crossing`, else ("main",)."""
    return ("left", "right") if check_variant(variant).crossing else ("main",)


def check_variant(name: str) -> HardVariant:
    """The variant called `name`; ValueError naming the known ones otherwise."""
    if name not in HARD:
        raise ValueError(f"unknown hard variant {name!r}; known: {', '.join(VARIANTS)}")
    return HARD[name]


def parse_variants(text: str) -> tuple[str, ...]:
    """Comma-separated variant names, "all" (every one) or "none"/"" (no variant), in `VARIANTS` order."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return VARIANTS
    if names in ([], ["none"]):
        return ()
    for name in names:
        check_variant(name)
    return tuple(v for v in VARIANTS if v in names)


def gap_frames(frames: int, share: float) -> list[tuple[int, int]]:
    """The faceless [start, stop) stretch around the middle: `share` of the frames (none for 0)."""
    if share <= 0:
        return []
    start = round(frames * (0.5 - share / 2))
    return [(start, start + max(1, round(frames * share)))]


def _ramp(frames: int, start: float, stop: float) -> np.ndarray:
    """(frames,) 0 until `start` of the video, smoothstep to 1 at `stop`, then 1."""
    t = np.clip((np.arange(frames) / max(frames - 1, 1) - start) / (stop - start), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _crossing(
    frames: int, v: HardVariant, rng: np.random.Generator, tracks: dict[str, Track]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Puts the left and right tracks on crossing paths (in place): the left one from the left to the right,
    the other back, one nearer the camera (in front, larger and lower) than the other. Where the one in
    front hides more than `HIDDEN` of the other's face box, that face counts as not shown. Returns the
    positions in drawing order (the one behind first) and the frames where each is drawn though its face
    counts as not shown."""
    width, height = v.width, v.height
    progress = _ramp(frames, 0.1, 0.9)
    front = "left" if rng.random() < 0.5 else "right"
    back = "right" if front == "left" else "left"
    for pos, track in tracks.items():
        if pos == back:
            track.height = BACK_SCALE * track.height  # further away
        # (n, 4) sprite extent around the face box centre: left, top, right, bottom
        ext = np.array([sprite_size(h, track.identity) for h in track.height])
        x_lo, x_hi = ext[:, 0] + 0.05 * width, width - ext[:, 2] - 0.05 * width
        along = progress if pos == "left" else 1 - progress
        track.cx = x_lo + along * (x_hi - x_lo)
        wobble = 0.02 * height * (smooth_curve(frames, v.fps, rng, knot_s=1.0) - 0.5)
        centre = (0.5 + (v.apart if pos == front else -v.apart) / 2) * height + wobble
        track.cy = np.clip(centre, ext[:, 1] + 3, height - ext[:, 3] - 3)
    cover = np.array(
        [sprite_cover(tracks[front].state(i), face_box(tracks[back].state(i))) for i in range(frames)]
    )
    hidden = tracks[back].face & (cover > HIDDEN)
    tracks[back].face = tracks[back].face & ~hidden
    return [back, front], {back: hidden}


def _edge_path(frames: int, track: Track) -> np.ndarray:
    """Moves the track along `EDGE_PATH` (in place: its x, its face's box a share past the left edge) and
    returns the frames where it is drawn though its face counts as not shown (more than `GONE` past)."""
    out = np.full(frames, EDGE_PATH[0][1])  # (n,) share of the box past the edge: a ramp per leg of the path
    for (start, a), (stop, b) in pairwise(EDGE_PATH):
        out += (b - a) * _ramp(frames, start, stop)
    boxes = np.array([face_box(track.state(i)) for i in range(frames)])  # (n, 4)
    width = boxes[:, 2] - boxes[:, 0]
    track.cx = width * (0.5 - out)
    reach = track.cx + np.array([sprite_size(h, track.identity)[2] for h in track.height])  # sprite's right
    gone = out > GONE
    drawn = track.face & gone & (reach >= 1.0)  # what shows of it is drawn
    track.face = track.face & ~gone
    return drawn


def _roam(track: Track, share: float, rng: np.random.Generator) -> None:
    """The track's path shrunk to `share` of its span about a point in the middle half of it (in x and in
    y), in place: a person in a wide shot stays in a part of the picture."""
    for axis in ("cx", "cy"):
        path = getattr(track, axis)  # (n,) face centres
        anchor = path.min() + rng.uniform(0.25, 0.75) * (path.max() - path.min())
        setattr(track, axis, anchor + share * (path - anchor))


def hard_scene(
    variant: str,
    frames: int,
    rng: np.random.Generator,
    tints: Mapping[str, Sequence[int]],
    identities: dict[str, int],
    names: dict[str, str] | None = None,
) -> tuple[dict[str, Track], Draw]:
    """The faces of a variant's video (subject name -> track) and the function that draws its frames.

    `tints` and `identities` are per position (`positions(variant)`); `names` maps a position to its
    subject name (default: the position).
    """
    v = check_variant(variant)
    names = names or {p: p for p in positions(variant)}
    size = (v.width, v.height)
    gap = gap_frames(frames, v.gap)
    by_position: dict[str, Track] = {}
    for pos in positions(variant):
        region = (0, v.width)
        track = make_track(frames, v.fps, size, region, tints[pos], rng, absent=gap, identity=identities[pos],
                           face_height=v.face_height, move_s=v.move_s)  # fmt: skip
        if v.roam < 1.0:
            _roam(track, v.roam, rng)
        lo, hi = v.brightness
        track.brightness = lo + (hi - lo) * track.brightness
        lo, hi = v.contrast
        track.contrast = lo + (hi - lo) * track.contrast
        if v.yaw:
            track.yaw = (1 if rng.random() < 0.5 else -1) * v.yaw * _ramp(frames, 0.15, 0.95)
        by_position[pos] = track
    order: list[str] = list(by_position)  # drawing order; crossing: the one behind first
    hidden: dict[str, np.ndarray] = {}  # crossing: frames where a face is drawn but hidden
    if v.crossing:
        order, hidden = _crossing(frames, v, rng, by_position)
    if v.edge:
        hidden = {"main": _edge_path(frames, by_position["main"])}
    subjects = {names[p]: t for p, t in by_position.items()}
    scene = HardScene(v, subjects, int(rng.integers(2**31)), [names[p] for p in order],
                      {names[p]: h for p, h in hidden.items()})  # fmt: skip
    return subjects, scene


class HardScene:
    """Draws frame i of a hard video: the faces (motion-blurred where the variant says), the occluder, then
    the scene's contrast, darkness and noise. Returns the box and landmarks of each face shown at frame i
    (a face hidden behind another is drawn but not shown)."""

    def __init__(
        self,
        variant: HardVariant,
        subjects: dict[str, Track],
        seed: int,
        order: list[str] | None = None,
        hidden: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.v, self.subjects, self.seed = variant, subjects, seed
        self.order = order or list(subjects)  # drawing order: later ones in front
        self.hidden = hidden or {}  # subject -> (n,) bool: drawn, though its face counts as not shown
        self._noise: np.ndarray | None = None  # (3, H, W, 3) float32 sensor noise, made at the first frame
        frames = next(iter(subjects.values())).frames
        rng = np.random.default_rng([seed, 1])
        # occluder: centre (u, v) in face box fractions and size (fraction of the box width), smooth in time
        self.occluder = np.stack(
            [
                0.2 + 0.6 * smooth_curve(frames, variant.fps, rng, knot_s=1.0),
                0.55 + 0.3 * smooth_curve(frames, variant.fps, rng, knot_s=1.3),
                0.4 + 0.25 * smooth_curve(frames, variant.fps, rng, knot_s=0.9),
            ],
            axis=1,
        )  # (n, 3)

    def __call__(self, image: np.ndarray, i: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        shown = {}
        for name in self.order:
            track = self.subjects[name]
            hidden = name in self.hidden and bool(self.hidden[name][i])
            if not (track.face[i] or hidden):
                continue
            drawn = self._face(image, track, i) if self.v.blur > 1 else render_face(image, track.state(i))
            if self.v.occluder:
                _ellipse(image, drawn[0], self.occluder[i])
            if not hidden:
                shown[name] = drawn
        if self.v.scene_contrast != 1 or self.v.scene_gain != 1 or self.v.noise > 0:
            x = image.astype(np.float32)  # (H, W, 3)
            x = (128.0 + self.v.scene_contrast * (x - 128.0)) * self.v.scene_gain
            if self.v.noise > 0:  # three noise fields drawn once, in turn, negated every other round
                if self._noise is None:
                    draw = np.random.default_rng([self.seed, 2]).standard_normal((3, *x.shape), np.float32)
                    self._noise = self.v.noise * draw  # (3, H, W, 3)
                x += self._noise[i % 3] * (1 if (i // 3) % 2 == 0 else -1)
            image[:] = np.clip(x + 0.5, 0, 255).astype(np.uint8)
        return shown

    def _face(self, image: np.ndarray, track: Track, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The face as the mean of `blur` renders over frame i's exposure, drawn in the region they cover;
        the box and landmarks of the middle render (frame i itself)."""
        n = track.frames
        times = i + np.linspace(-0.5, 0.5, self.v.blur) * self.v.shutter
        states = []
        for t in times:
            cx, cy, height = (
                float(np.interp(t, np.arange(n), getattr(track, k))) for k in ("cx", "cy", "height")
            )
            states.append(replace(track.state(i), cx=cx, cy=cy, height=height))
        extents = np.array([sprite_size(s.height, track.identity) for s in states])  # (k, 4)
        h, w = image.shape[:2]
        x0 = max(int(min(s.cx for s in states) - extents[:, 0].max()) - 2, 0)
        y0 = max(int(min(s.cy for s in states) - extents[:, 1].max()) - 2, 0)
        x1 = min(int(max(s.cx for s in states) + extents[:, 2].max()) + 3, w)
        y1 = min(int(max(s.cy for s in states) + extents[:, 3].max()) + 3, h)
        region = image[y0:y1, x0:x1]
        total = np.zeros(region.shape, np.float32)
        middle = len(states) // 2
        for k, s in enumerate(states):
            canvas = region.copy()
            box, landmarks = render_face(canvas, replace(s, cx=s.cx - x0, cy=s.cy - y0))
            total += canvas
            if k == middle:
                drawn = box + [x0, y0, x0, y0], landmarks + [x0, y0]
        region[:] = (total / len(states) + 0.5).astype(np.uint8)
        return drawn


def _ellipse(image: np.ndarray, box: np.ndarray, where: np.ndarray) -> None:
    """An anti-aliased, softly shaded ellipse in front of the face box (4,): centre at (u, v) box fractions,
    width `size` of the box width, height 0.8 of that (where = (u, v, size))."""
    u, v, size = where
    bw, bh = box[2] - box[0], box[3] - box[1]
    cx, cy = box[0] + u * bw, box[1] + v * bh
    rx, ry = size * bw / 2, 0.8 * size * bw / 2
    h, w = image.shape[:2]
    xa, xb = max(int(cx - rx) - 2, 0), min(int(cx + rx) + 3, w)
    ya, yb = max(int(cy - ry) - 2, 0), min(int(cy + ry) + 3, h)
    yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    cover = np.clip((1.0 - d) * min(rx, ry) + 0.5, 0.0, 1.0)[..., None]  # about one pixel of edge
    shade = (1.1 - 0.25 * (yy - cy + ry) / (2 * ry))[..., None]  # lighter at the top
    colour = 255 * OCCLUDER_COLOUR * shade
    patch = image[ya:yb, xa:xb].astype(np.float32)
    image[ya:yb, xa:xb] = (patch + cover * (colour - patch) + 0.5).astype(np.uint8)


def hard_identities(variant: str, seed: int) -> dict[str, int]:
    """The people of a variant's video: identities 1-6 (never the photo itself), two different ones when
    crossing; the same for the same variant and seed."""
    k = VARIANTS.index(variant)
    first = 1 + (k + seed) % 6
    return {p: 1 + (first - 1 + j * 3) % 6 for j, p in enumerate(positions(variant))}


def write_hard(
    path: Path,
    variant: str,
    seconds: float,
    seed: int = 0,
    crf: int = 18,
    preset: str = "veryfast",
) -> pa.Table:
    """Write the video of `variant`, `seconds` long, to `path`; its truth table (subjects `<stem>` or
    `<stem>_left` / `<stem>_right`). Tints change about every 0.6 s, in random order."""
    v = check_variant(variant)
    frames = max(8, round(seconds * v.fps))
    rng = np.random.default_rng([seed, 7000 + VARIANTS.index(variant)])
    tints = {
        p: [int(t) for t in rng.integers(0, 8, max(2, round(frames / (0.6 * v.fps))))]
        for p in positions(variant)
    }
    names = {p: path.stem if p == "main" else f"{path.stem}_{p}" for p in positions(variant)}
    subjects, draw = hard_scene(variant, frames, rng, tints, hard_identities(variant, seed), names)
    return write_video(path, v.fps, (v.width, v.height), subjects, rng, crf=crf, preset=preset, draw=draw)
