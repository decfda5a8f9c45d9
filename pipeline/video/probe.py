"""Container probe: frame rate, frame count, size and duration of a video from its metadata (PyAV).

`probe_video` reads the container header only and decodes nothing, so it is cheap enough to run over a
whole data set. The container's frame count can differ from what a decoder really yields (by one or more,
see the ABAW notes); `count_decoded_frames` decodes the whole video to count them, for the places where the
exact number matters. Both raise `VideoError(path, reason)` on a file they cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


class VideoError(RuntimeError):
    """A video that cannot be read; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)  # the file at fault
        self.reason = reason  # what went wrong, in words


@dataclass(frozen=True)
class VideoInfo:
    """What a container says about its first video stream."""

    fps: float  # average frame rate (frames per second)
    frame_count: int  # frames the container claims; estimated from duration x fps where it claims none
    width: int  # frame width in pixels, as stored (decoding turns a video displayed turned by 90 degrees:
    height: int  # its frames come out height x width, `pipeline.video.sources.quarter_turns`)
    duration_s: float  # duration of the video stream in seconds (0.0 where the container has none)


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(path, f"cannot open the container: {e}") from None


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(path, "no video stream in the container")
    return container.streams.video[0]


def probe_video(path: Path | str) -> VideoInfo:
    """Frame rate, frame count, size and duration from the container metadata; nothing is decoded."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(path, container)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frames = int(stream.frames or 0)
        if frames <= 0 and duration > 0 and fps > 0:
            frames = round(duration * fps)
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if width <= 0 or height <= 0:
        raise VideoError(path, f"video stream has no frame size ({width}x{height})")
    if frames <= 0:
        raise VideoError(path, "the container gives neither a frame count nor a duration")
    return VideoInfo(fps=fps, frame_count=frames, width=width, height=height, duration_s=duration)


def count_decoded_frames(path: Path | str) -> int:
    """Decode the first video stream to the end and count the frames the decoder yields.

    Raises `VideoError` when the file cannot be opened or decoding fails part way (the message says
    after how many frames).
    """
    path = Path(path)
    count = 0
    with _open(path) as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        try:
            for _ in container.decode(stream):
                count += 1
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoError(path, f"decoding failed after {count} frames: {e}") from None
    if count == 0:
        raise VideoError(path, "the decoder yields no frames")
    return count
