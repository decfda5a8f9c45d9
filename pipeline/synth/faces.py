"""Rendering of the synthetic data set's face: a real face with visible, label-carrying attributes.

The face is cut from scikit-image's `skimage.data.astronaut()` (a public-domain NASA portrait that ships
with the scikit-image wheel), feathered with an elliptical mask and composited onto a background. Other
identities are made from that one photo (`identity`, `load_sprite(k)`): mirrored or not, a narrower or
wider face, another skin tone and hair colour; identity 0 is the photo as it is. Each rendered face has
five visible attributes (see `pipeline.synth.common` for how labels are derived from them):

- brightness in [0, 1]: the mean luminance of the face region, 0.3 + 0.4 * brightness;
- contrast in [0, 1]: the luminance gain around that mean, 0.6 + 0.8 * contrast;
- tint 0..7: a chroma change that keeps luminance: 0 none, 1 red, 2 orange, 3 yellow, 4 blue, 5 violet,
  6 pink, 7 grey (fully desaturated); `strength` scales how much chroma it replaces and `hue_shift` turns
  its hue (1 and 0 by default: every tint as in `TINT_HUES`, `TINT_STRENGTH`);
- marks (12 bools): a small yellow dot at each of 12 fixed places on the face (`MARK_POSITIONS`, in
  face-box coordinates, radius `MARK_RADIUS` of the box width), drawn after the photometric change;
- scale and position: where the face box sits in the frame and how tall it is (not a label);
- yaw (not a label, 0 by default): the head turned about a vertical axis, approximated on the flat sprite
  by mapping it onto a cylinder as wide as the head (`turn`): the face squeezes towards one side and its
  far side goes out of sight; the box and landmarks follow.

The true face box is the box MTCNN draws on the source image (`SOURCE_BOX`), moved and scaled with the face;
the five landmarks (eyes, nose, mouth corners) likewise come from `SOURCE_LANDMARKS`.
"""

from __future__ import annotations

import colorsys
import importlib.util
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.colour import LUMA

# Region of astronaut() cut out as the face sprite: x1, y1, x2, y2 (head, hair and the top of the neck).
SOURCE_CROP = (136, 14, 312, 214)
# Face box in astronaut() as MTCNN draws it (forehead to chin, cheek to cheek): x1, y1, x2, y2.
SOURCE_BOX = (181.0, 62.2, 267.7, 172.1)
# Five landmarks in astronaut() (MTCNN order): left eye, right eye, nose, left and right mouth corner.
SOURCE_LANDMARKS = ((205.0, 101.7), (246.8, 103.7), (224.7, 129.0), (201.7, 139.2), (245.3, 141.9))
# Where the 12 marks sit, as (u, v) fractions of the face box; mark k carries AU k of model.tasks.AU_NAMES.
MARK_POSITIONS: tuple[tuple[float, float], ...] = (
    (0.30, 0.17), (0.50, 0.14), (0.70, 0.17),  # forehead
    (0.50, 0.36),  # between the brows
    (0.13, 0.50), (0.87, 0.52),  # outer cheeks
    (0.27, 0.56), (0.73, 0.57),  # inner cheeks
    (0.08, 0.70), (0.92, 0.72),  # jaw sides
    (0.35, 0.88), (0.65, 0.88),  # chin
)  # fmt: skip
MARK_RADIUS = 0.04  # radius of a mark as a fraction of the face box width
# Hue (degrees) of each tint, None for no hue; its strength (fraction of the chroma replaced). The hues
# avoid green and cyan faces, which MTCNN often misses; tint 7 replaces all chroma by grey.
TINT_HUES: tuple[float | None, ...] = (None, 0.0, 35.0, 60.0, 240.0, 285.0, 320.0, None)
TINT_STRENGTH: tuple[float, ...] = (0.0, 0.45, 0.45, 0.35, 0.35, 0.45, 0.45, 1.0)
TINT_COLOURS: tuple[tuple[float, float, float], ...] = tuple(
    (1.0, 1.0, 1.0) if hue is None else colorsys.hsv_to_rgb(hue / 360, 0.85, 1.0) for hue in TINT_HUES
)
MARK_COLOUR = np.array([1.0, 1.0, 0.0], dtype=np.float32)  # saturated yellow (black rings break MTCNN)
HEAD_HALF_WIDTH = 0.47  # half-width of the head's elliptical mask, as a fraction of the sprite width
NOSE_DEPTH = 0.3  # how far the nose stands out of the face, as a fraction of the face box width (yaw)


@dataclass(frozen=True)
class FaceState:
    """What one face looks like in one frame."""

    cx: float  # face box centre, x, in frame pixels
    cy: float  # face box centre, y, in frame pixels
    height: float  # face box height in frame pixels
    brightness: float  # 0..1, sets the mean luminance of the face
    contrast: float  # 0..1, sets the luminance gain around that mean
    tint: int  # 0..7, index into TINT_COLOURS
    marks: tuple[bool, ...]  # 12 flags, one per MARK_POSITIONS entry
    identity: int = 0  # which face (`identity`); 0: the photo as it is
    strength: float = 1.0  # factor of the tint's strength (TINT_STRENGTH)
    hue_shift: float = 0.0  # degrees added to the tint's hue (TINT_HUES)
    yaw: float = 0.0  # degrees the head is turned (positive: the face turns towards +x); 0: frontal


@dataclass(frozen=True)
class Identity:
    """How one synthetic person differs from the photo."""

    mirror: bool  # flipped left to right
    width: float  # face width factor (the height stays)
    chin: float  # height factor of the face below the nose
    skin: tuple[float, float, float]  # RGB gains of the face
    hair: tuple[float, float, float]  # RGB gains of the top of the head (hair)
    beard: float  # 0..1: how dark a stubble over the chin and upper lip


def identity(k: int) -> Identity:
    """Identity `k`: 0 is the photo; the others a fixed draw of their own (the same in every data set)."""
    if k == 0:
        return Identity(False, 1.0, 1.0, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 0.0)
    rng = np.random.default_rng([7919, k])
    tone = rng.uniform(0.65, 1.1)  # darker or lighter skin, then warmer or cooler
    skin = tone * np.array([1.0, rng.uniform(0.85, 1.05), rng.uniform(0.75, 1.1)])
    hair = rng.uniform(0.35, 1.4) * np.array([1.0, *rng.uniform(0.7, 1.1, 2)])
    width, chin = rng.uniform(0.88, 1.12), rng.uniform(0.88, 1.15)
    beard = rng.uniform(0.3, 0.6) if k % 3 == 2 else 0.0
    return Identity(bool(k % 2), round(float(width), 3), round(float(chin), 3),
                    tuple(skin.round(3).tolist()), tuple(hair.round(3).tolist()),  # type: ignore[arg-type]
                    round(float(beard), 3))  # fmt: skip


@dataclass(frozen=True)
class Sprite:
    """The face cut from astronaut(), with its mask and geometry in sprite pixels."""

    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) uint8, elliptical feathered mask
    box: np.ndarray  # (4,) float: face box x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float
    mean_luma: float  # mean luminance (0..1) inside the face box


def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait (512, 512, 3) uint8.

    The PNG that ships in the scikit-image wheel is read with PIL (the same pixels as
    `skimage.data.astronaut()`, without the two seconds that importing `skimage.io` takes).
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise RuntimeError("the synthetic data set needs scikit-image (its data.astronaut() image)")
    png = Path(spec.origin).parent / "data" / "astronaut.png"
    if png.is_file():
        return np.asarray(Image.open(png).convert("RGB"))
    from skimage.data import astronaut as load  # pragma: no cover - a wheel without the file

    return load()  # pragma: no cover


@cache
def load_sprite(k: int = 0) -> Sprite:
    """The face sprite of identity `k` (0: cut from `astronaut()` as it is)."""
    if k:
        return _other(load_sprite(0), identity(k))
    x1, y1, x2, y2 = SOURCE_CROP
    rgb = np.ascontiguousarray(astronaut()[y1:y2, x1:x2])
    h, w = rgb.shape[:2]
    box = np.array(SOURCE_BOX) - [x1, y1, x1, y1]
    landmarks = np.array(SOURCE_LANDMARKS) - [x1, y1]
    # elliptical mask around the head, feathered over its outer 12 %
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2 - 0.04 * h
    r = np.sqrt(((xx - cx) / (HEAD_HALF_WIDTH * w)) ** 2 + ((yy - cy) / (0.49 * h)) ** 2)
    alpha = (np.clip((1.0 - r) / 0.12, 0.0, 1.0) * 255).astype(np.uint8)
    bx1, by1, bx2, by2 = box.round().astype(int)
    mean_luma = float((rgb[by1:by2, bx1:bx2].astype(np.float32) / 255 @ LUMA).mean())
    return Sprite(rgb=rgb, alpha=alpha, box=box, landmarks=landmarks, mean_luma=mean_luma)


def _other(base: Sprite, who: Identity) -> Sprite:
    """The sprite of another identity: stretched (wider or narrower, a longer or shorter lower face),
    recoloured (skin, hair over the top of the head, a stubble), mirrored; its face box and landmarks follow
    (eyes and mouth corners swap sides when mirrored)."""
    h, w = base.rgb.shape[:2]
    nose = int(base.landmarks[2, 1])  # rows below the nose are stretched by `chin`
    nw, nh = max(round(w * who.width), 1), nose + max(round((h - nose) * who.chin), 1)

    def stretch(image: np.ndarray) -> np.ndarray:
        img = Image.fromarray(image)
        upper = img.crop((0, 0, w, nose)).resize((nw, nose), Image.Resampling.BILINEAR)
        lower = img.crop((0, nose, w, h)).resize((nw, nh - nose), Image.Resampling.BILINEAR)
        return np.concatenate([np.asarray(upper), np.asarray(lower)], axis=0)

    def y_of(y: np.ndarray) -> np.ndarray:
        return np.where(y > nose, nose + (y - nose) * who.chin, y)

    rgb, alpha = stretch(base.rgb).astype(np.float32) / 255, stretch(base.alpha)
    box = np.array([base.box[0] * nw / w, base.box[1], base.box[2] * nw / w, y_of(base.box[3])])
    landmarks = np.column_stack([base.landmarks[:, 0] * nw / w, y_of(base.landmarks[:, 1])])
    bh = box[3] - box[1]
    yy = np.arange(nh, dtype=np.float32)[:, None, None]
    hair = np.clip((box[1] + 0.12 * bh - yy) / (0.1 * bh) + 0.5, 0.0, 1.0)  # (h, 1, 1): 1 over the hair
    gain = hair * np.asarray(who.hair, np.float32) + (1 - hair) * np.asarray(who.skin, np.float32)
    rgb = rgb * gain
    if who.beard:  # darker, grainy skin around the mouth and over the chin, feathered
        xx = np.arange(nw, dtype=np.float32)[None, :, None]
        cx, lip = (box[0] + box[2]) / 2, (landmarks[3, 1] + landmarks[4, 1]) / 2
        r = np.sqrt(((xx - cx) / (0.36 * (box[2] - box[0]))) ** 2 + ((yy - lip) / (0.3 * bh)) ** 2)
        top = np.clip((yy - lip + 0.12 * bh) / (0.08 * bh), 0.0, 1.0)  # fades in above the mouth
        cover = np.clip((1.0 - r) / 0.35, 0.0, 1.0) * top  # (h, w, 1)
        grain = np.random.default_rng([7919, 0]).uniform(0.5, 1.0, (nh, nw, 1)).astype(np.float32)
        rgb = rgb * (1 - who.beard * grain * cover)
    rgb = (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if who.mirror:
        rgb, alpha = rgb[:, ::-1].copy(), alpha[:, ::-1].copy()
        box = np.array([nw - box[2], box[1], nw - box[0], box[3]])  # x1 < x2 again
        landmarks = np.column_stack([nw - landmarks[:, 0], landmarks[:, 1]])[[1, 0, 2, 4, 3]]
    bx1, by1, bx2, by2 = box.round().astype(int)
    mean_luma = float((rgb[by1:by2, bx1:bx2].astype(np.float32) / 255 @ LUMA).mean())
    return Sprite(rgb=rgb, alpha=alpha, box=box, landmarks=landmarks, mean_luma=mean_luma)


def tint_colour(tint: int, hue_shift: float = 0.0) -> np.ndarray:
    """(3,) RGB colour of a tint with its hue turned by `hue_shift` degrees (white for no hue)."""
    hue = TINT_HUES[tint]
    if hue is None or hue_shift == 0.0:
        return np.array(TINT_COLOURS[tint], dtype=np.float64)
    return np.array(colorsys.hsv_to_rgb(((hue + hue_shift) % 360) / 360, 0.85, 1.0), dtype=np.float64)


def colour_transform(state: FaceState, mean_luma: float) -> tuple[np.ndarray, np.ndarray]:
    """Brightness, contrast and tint as one affine map of RGB in [0, 1]: rgb -> rgb @ A.T + b.

    Contrast and brightness: gain * (rgb - mean_luma) + target. Tint: (1 - s) * x + s * luma(x) * colour,
    with the colour scaled to unit luminance, so the luminance stays what brightness and contrast made it.
    """
    target = 0.3 + 0.4 * state.brightness
    gain = 0.6 + 0.8 * state.contrast
    strength = min(TINT_STRENGTH[state.tint] * state.strength, 1.0)
    colour = tint_colour(state.tint, state.hue_shift)
    colour /= colour @ LUMA
    tint = (1 - strength) * np.eye(3) + strength * np.outer(colour, LUMA)  # (3, 3)
    return (gain * tint).astype(np.float32), (tint @ np.full(3, target - gain * mean_luma)).astype(np.float32)


@lru_cache(maxsize=256)
def _resized(width: int, height: int, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Identity k's sprite resized to width x height: RGB (h, w, 3), alpha (h, w, 1), float32 in [0, 1]."""
    sprite = load_sprite(k)
    rgb = np.asarray(
        Image.fromarray(sprite.rgb).resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32
    )
    alpha = np.asarray(
        Image.fromarray(sprite.alpha).resize((width, height), Image.Resampling.BILINEAR), np.float32
    )
    return rgb / 255, (alpha / 255)[..., None]


def _draw_marks(rgb: np.ndarray, box: np.ndarray, marks: tuple[bool, ...]) -> None:
    """Anti-aliased yellow dots at the marks that are on; draws into `rgb` (h, w, 3) float."""
    radius = max(MARK_RADIUS * (box[2] - box[0]), 2.0)
    h, w = rgb.shape[:2]
    for on, (u, v) in zip(marks, MARK_POSITIONS, strict=True):
        if not on:
            continue
        mx, my = box[0] + u * (box[2] - box[0]), box[1] + v * (box[3] - box[1])
        xa, xb = max(int(mx - radius - 2), 0), min(int(mx + radius + 3), w)
        ya, yb = max(int(my - radius - 2), 0), min(int(my + radius + 3), h)
        yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
        d = np.sqrt((xx - mx) ** 2 + (yy - my) ** 2)
        cover = np.clip(radius + 0.5 - d, 0.0, 1.0)[..., None]
        patch = rgb[ya:yb, xa:xb]
        patch[:] = patch * (1 - cover) + cover * MARK_COLOUR


def placement(state: FaceState) -> tuple[int, int, int, int, np.ndarray]:
    """Where `render_face` puts the sprite of `state`: its top-left corner ox, oy and size nw, nh in frame
    pixels, and the scale (kx, ky) from sprite to frame pixels."""
    sprite = load_sprite(state.identity)
    sh, sw = sprite.rgb.shape[:2]
    k = state.height / (sprite.box[3] - sprite.box[1])
    nw, nh = max(round(sw * k), 1), max(round(sh * k), 1)
    kx, ky = nw / sw, nh / sh
    # place the resized sprite so that its face box centre lands on (cx, cy)
    bcx, bcy = (sprite.box[0] + sprite.box[2]) / 2 * kx, (sprite.box[1] + sprite.box[3]) / 2 * ky
    return round(state.cx - bcx), round(state.cy - bcy), nw, nh, np.array([kx, ky])


def sprite_cover(state: FaceState, box: np.ndarray) -> float:
    """The share of `box` (4,) in frame pixels that the sprite of `state` (unturned) hides: its mean
    opacity over the box's pixels."""
    ox, oy, nw, nh, _ = placement(state)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if x2 <= x1 or y2 <= y1:
        return 0.0
    _, alpha = _resized(nw, nh, state.identity)  # (nh, nw, 1)
    inside = alpha[max(y1 - oy, 0) : max(y2 - oy, 0), max(x1 - ox, 0) : max(x2 - ox, 0), 0]
    return float(inside.sum() / ((x2 - x1) * (y2 - y1)))


def render_face(frame: np.ndarray, state: FaceState) -> tuple[np.ndarray, np.ndarray]:
    """Composite one face into `frame` (H, W, 3) uint8, in place; returns its box (4,) and landmarks (5, 2).

    A sprite reaching past the frame's edge is cut there, as a camera cuts a face too close to it; the
    box and landmarks stay where the whole face would be (parts of them outside the frame). A sprite
    wholly outside the frame is an error.
    """
    sprite = load_sprite(state.identity)
    ox, oy, nw, nh, (kx, ky) = placement(state)
    fh, fw = frame.shape[:2]
    xa, ya, xb, yb = max(ox, 0), max(oy, 0), min(ox + nw, fw), min(oy + nh, fh)  # the part in the frame
    if xb <= xa or yb <= ya:
        raise ValueError(f"face sprite at ({ox}, {oy}) size {nw}x{nh} is outside a {fw}x{fh} frame")
    rgb, a = _resized(nw, nh, state.identity)  # (nh, nw, 3), (nh, nw, 1)
    box = sprite.box * [kx, ky, kx, ky]  # in resized sprite pixels
    matrix, offset = colour_transform(state, sprite.mean_luma)
    face = np.clip(rgb @ matrix.T + offset, 0, 1)  # (nh, nw, 3)
    _draw_marks(face, box, state.marks)
    landmarks = sprite.landmarks * [kx, ky]  # (5, 2) in resized sprite pixels
    if state.yaw:
        face, a, box, landmarks = turn(face, a, box, landmarks, state.yaw)
    cut = np.s_[ya - oy : yb - oy, xa - ox : xb - ox]  # the sprite's pixels inside the frame
    region = frame[ya:yb, xa:xb].astype(np.float32)
    blended = region + a[cut] * (face[cut] * 255 - region)
    frame[ya:yb, xa:xb] = (blended + 0.5).astype(np.uint8)
    return box + [ox, oy, ox, oy], landmarks + [ox, oy]


def face_box(state: FaceState) -> np.ndarray:
    """The box (4,) in frame pixels that `render_face` returns for an unturned face at `state`."""
    ox, oy, _, _, (kx, ky) = placement(state)
    return load_sprite(state.identity).box * [kx, ky, kx, ky] + [ox, oy, ox, oy]


def turn(
    face: np.ndarray, alpha: np.ndarray, box: np.ndarray, landmarks: np.ndarray, yaw: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A sprite turned by `yaw` degrees about a vertical axis through its face box centre.

    The sprite is taken as painted on a vertical cylinder as wide as the head's mask (radius
    `HEAD_HALF_WIDTH` of the sprite width): the column at angle phi moves to phi + yaw, and what passes
    beyond the silhouette (|phi + yaw| > 90 degrees) is hidden. Face (h, w, 3) and alpha (h, w, 1) ->
    the same shapes; landmarks (5, 2) in sprite pixels follow (a point that turns out of sight stays at
    the silhouette). The box (4,) is the visible part of the turned face box and, in front of it, the
    nose that the flat sprite lacks: it stands `NOSE_DEPTH` of the box width out of the face, which adds
    that depth times |sin(yaw)| on the leading side (as a detector's box on a turned head does).
    """
    if yaw == 0:
        return face, alpha, box, landmarks
    theta = np.radians(yaw)
    w = face.shape[1]
    cx, r = (box[0] + box[2]) / 2, HEAD_HALF_WIDTH * w
    u = (np.arange(w) + 0.5 - cx) / r  # (w,) output columns on the cylinder
    source = np.arcsin(np.clip(u, -1.0, 1.0)) - theta  # angle each output column shows
    edge = np.clip((1 - np.abs(u)) * r / 2, 0.0, 1.0)  # (w,) the silhouette feathered over ~2 px
    shown = np.where(np.abs(source) <= np.pi / 2, edge, 0.0)
    x = np.clip(cx + r * np.sin(source) - 0.5, 0, w - 1)  # (w,) source column, linear between two
    x0 = np.floor(x).astype(int)
    x1, f = np.minimum(x0 + 1, w - 1), (x - x0)[None, :, None]
    face = face[:, x0] * (1 - f) + face[:, x1] * f
    alpha = (alpha[:, x0] * (1 - f) + alpha[:, x1] * f) * shown[None, :, None]

    def moved(xs: np.ndarray) -> np.ndarray:
        phi = np.arcsin(np.clip((xs - cx) / r, -1.0, 1.0)) + theta
        return cx + r * np.sin(np.clip(phi, -np.pi / 2, np.pi / 2))

    nose = NOSE_DEPTH * (box[2] - box[0]) * abs(np.sin(theta))
    x1, x2 = moved(box[0]) - (nose if yaw < 0 else 0.0), moved(box[2]) + (nose if yaw > 0 else 0.0)
    box = np.array([x1, box[1], x2, box[3]])
    landmarks = np.column_stack([moved(landmarks[:, 0]), landmarks[:, 1]])
    return face.astype(np.float32), alpha.astype(np.float32), box, landmarks


def sprite_size(height: float, k: int = 0) -> tuple[float, float, float, float]:
    """Extent of identity k's sprite around the face box centre for a face box `height` px tall: left, top,
    right, bottom."""
    sprite = load_sprite(k)
    k = height / (sprite.box[3] - sprite.box[1])
    sh, sw = sprite.rgb.shape[:2]
    bcx, bcy = (sprite.box[0] + sprite.box[2]) / 2, (sprite.box[1] + sprite.box[3]) / 2
    return bcx * k + 1, bcy * k + 1, (sw - bcx) * k + 1, (sh - bcy) * k + 1


def make_background(height: int, width: int, rng: np.random.Generator, textured: bool) -> np.ndarray:
    """A static background (H, W, 3) uint8: a muted two-colour gradient, with soft blotches if `textured`."""
    c0, c1 = rng.uniform(0.15, 0.75, size=(2, 3)).astype(np.float32)
    t = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    t = np.broadcast_to(t, (height, width, 1))
    bg = c0 * (1 - t) + c1 * t
    if textured:
        grid = rng.uniform(-0.12, 0.12, size=(6, 10, 3)).astype(np.float32)
        blotches = [
            np.asarray(Image.fromarray(grid[..., c]).resize((width, height), Image.Resampling.BICUBIC))
            for c in range(3)
        ]
        bg = bg + np.stack(blotches, axis=-1)
    return (np.clip(bg, 0, 1) * 255 + 0.5).astype(np.uint8)
