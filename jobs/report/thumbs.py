"""Face thumbnails: frames at regular intervals decoded from the video, cut around the cached box, the box drawn.

Frames are found by seeking (PyAV): decode index i is the frame presented at i / fps from the stream's
start, as the sequential decode of the extraction counts them for a constant frame rate. Only a few frames
per video are decoded, each from the keyframe before it, so a long video costs a few GOPs, not a full
decode. Each thumbnail is a square around the box (`CONTEXT` times its size, so that a wrong or switched
face shows), the box drawn in the colour of its source, as a small JPEG in a data URI. A frame without a
face record shows the whole frame, marked "no face".
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jobs.report.gather import SubjectData, VideoData
from pipeline.video.sources import quarter_turns

CONTEXT = 2.2  # side of the cut-out square / the box's larger side
BOX_COLOURS = {"detected": (44, 160, 44), "refined": (23, 190, 207), "tracked": (31, 119, 180),
               "interpolated": (255, 127, 14)}  # fmt: skip


@dataclass(frozen=True)
class Thumb:
    """One thumbnail of one subject."""

    frame: int  # 0-based decode index
    uri: str  # "data:image/jpeg;base64,..." ("" where the frame could not be decoded)
    source: str  # the face record's source at that frame
    note: str = ""  # e.g. "no face", or why there is no image


def sample_indices(frames: int, count: int) -> list[int]:
    """`count` decode indices at regular intervals over `frames` frames (the middle of equal parts)."""
    count = max(0, min(count, frames))
    return sorted({int((j + 0.5) * frames / count) for j in range(count)})


def read_frames(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode index -> (H, W, 3) uint8 RGB frame, for those of `indices` the video holds.

    Each frame is reached by seeking to the keyframe before it and decoding forward to its time, and turned
    upright as the extraction decoded it (`pipeline.video.sources.quarter_turns`), where the cached boxes are.
    """
    import av

    wanted = sorted({int(i) for i in indices})
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate or stream.time_base is None:
            raise ValueError("no frame rate or time base to seek by")
        fps, base = float(rate), float(stream.time_base)
        start = stream.start_time or 0
        for i in wanted:
            if i in found:
                continue
            container.seek(start + int(i / fps / base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if round((frame.pts - start) * base * fps) >= i:  # the frame of index i (or the next one)
                    found[i] = np.rot90(frame.to_ndarray(format="rgb24"), quarter_turns(frame.rotation))
                    break
    return found


def _uri(image: Image.Image, quality: int) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def thumbnail(frame: np.ndarray, box: np.ndarray, source: str, size: int, quality: int = 70) -> str:
    """A `size` x `size` cut-out around `box` (x1, y1, x2, y2 pixels; NaN: the whole frame, marked) as a
    JPEG data URI, with the box drawn in the colour of its `source`."""
    image = Image.fromarray(frame)
    if not np.isfinite(box).all():
        image.thumbnail((size * 2, size))
        ImageDraw.Draw(image).text((4, 2), "no face", fill=(255, 64, 64))
        return _uri(image, quality)
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 8.0) * CONTEXT
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    crop = image.crop((left, top, left + int(side), top + int(side)))  # outside the frame: black
    scale = size / max(int(side), 1)
    crop = crop.resize((size, size), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(crop)
    rect = [(x1 - left) * scale, (y1 - top) * scale, (x2 - left) * scale, (y2 - top) * scale]
    draw.rectangle(rect, outline=BOX_COLOURS.get(source, (255, 255, 255)), width=2)
    return _uri(crop, quality)


def video_thumbs(
    video: VideoData, subjects: Sequence[SubjectData], count: int, size: int
) -> dict[str, list[Thumb]]:
    """Subject -> its thumbnails at `count` regular times of the video (one decode for all its subjects);
    empty lists with the reason where the video cannot be decoded."""
    frames = max(s.frames for s in subjects)
    indices = sample_indices(frames, count)
    reason = video.missing
    decoded: dict[int, np.ndarray] = {}
    if not reason and video.path is not None:
        try:
            decoded = read_frames(video.path, indices)
        except (OSError, ValueError, IndexError) as e:  # PyAV's errors are OSError / ValueError subclasses
            reason = f"{video.path} cannot be decoded: {e}"
    out: dict[str, list[Thumb]] = {}
    for subject in subjects:
        thumbs = []
        for i in indices:
            record = subject.faces
            source = str(record.source[i]) if record is not None and i < len(record.source) else "none"
            box = record.box[i] if record is not None and i < len(record.box) else np.full(4, np.nan)
            if i not in decoded:
                thumbs.append(Thumb(i, "", source, reason or f"frame {i} is not in the video"))
            else:
                thumbs.append(Thumb(i, thumbnail(decoded[i], box, source, size), source,
                                    "" if np.isfinite(box).all() else "no face"))  # fmt: skip
        out[subject.name] = thumbs
    return out
