"""Frame sources (decord, PyAV) and the child-process loop that runs one under a watchdog.

A frame source is a function `source(path, start, chunk_frames, num_threads) -> Iterator[np.ndarray]`
that yields contiguous RGB frames `(n, H, W, 3) uint8`, n <= chunk_frames, beginning at decode index
`start`. One that converts each frame itself (PyAV) may also take `chunks`, a function that hands it the
array to fill for each chunk: the child then lends it a shared slot, which saves a copy of every frame and
the page faults of a fresh chunk (`ChunkBuffers`). `pipeline.video.decode` starts
`python -c "from pipeline.video.sources import main; main()"` as a child process (a fresh interpreter:
nothing is forked, the caller's `__main__` is not re-imported), sends it a job over a socket, and `serve`
hands the chunks back through memory files (memfd) whose descriptors travel over the socket; the parent
views them in place and hands each one back when it is done with it.
A child that finished a job cleanly waits for the next one (one video after another, without a new
interpreter each time); it exits when the socket closes or a job ends any other way.
This module imports neither torch nor decord/av at the top, so that the child starts fast; decord and
PyAV are imported inside the sources.
"""

from __future__ import annotations

import ctypes
import inspect
import logging
import mmap
import os
import signal
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle

import numpy as np

log = logging.getLogger(__name__)

FrameSource = Callable[..., Iterator[np.ndarray]]  # (path, start, chunk_frames, num_threads[, chunks=])
# the array a chunk of a source is written into, given the chunk's whole shape (chunk_frames, H, W, 3); the
# source yields it (or its first frames, where the video ends first) and asks for the next one after that
ChunkBuffers = Callable[[tuple[int, int, int, int]], np.ndarray]

MAX_DECORD_THREADS = 2  # decord fails on some files above 2 threads (dmlc/decord#314)


class _DLPack:
    """A decord NDArray seen through the DLPack protocol, so that numpy can view it without a copy."""

    def __init__(self, array) -> None:
        self.array = array

    def __dlpack__(self, **_):
        return self.array.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU, device 0


def decord_source(path: str, start: int, chunk_frames: int, num_threads: int) -> Iterator[np.ndarray]:
    """Frames `start..len(vr)` from decord, `get_batch` over contiguous ranges of `chunk_frames`."""
    from decord import VideoReader, cpu

    # the reader is created here, inside the process that uses it, never before a fork (dmlc/decord#294)
    reader = VideoReader(path, ctx=cpu(0), num_threads=min(max(num_threads, 1), MAX_DECORD_THREADS))
    total = len(reader)
    for first in range(start, total, chunk_frames):
        batch = reader.get_batch(list(range(first, min(first + chunk_frames, total))))
        try:
            yield np.from_dlpack(_DLPack(batch))  # (n, H, W, 3) uint8 view of decord's buffer: no copy
        except (TypeError, BufferError, RuntimeError):
            yield batch.asnumpy()


def _rgb(frame, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 view of a PyAV frame converted to RGB at `size` = (W, H) (no copy of the pixels)."""
    width, height = size
    rgb = frame.reformat(format="rgb24", width=width, height=height)
    plane = rgb.planes[0]
    pixels = np.frombuffer(plane, np.uint8, count=height * plane.line_size).reshape(height, plane.line_size)
    return pixels[:, : width * 3].reshape(height, width, 3)  # rows may be padded: cut to the width


def quarter_turns(rotation: float | None) -> int:
    """Counterclockwise quarter turns (0 to 3) that show a decoded frame the way its stream's display matrix
    says, from PyAV's `VideoFrame.rotation` (degrees counterclockwise, -180 to 180; a phone's portrait video
    is stored lying on its side with -90). Angles between quarter turns go to the nearest one."""
    return round((rotation or 0) / 90.0) % 4


def pyav_source(
    path: str, start: int, chunk_frames: int, num_threads: int, chunks: ChunkBuffers | None = None
) -> Iterator[np.ndarray]:
    """Frames from decode index `start` to the end with PyAV; a corrupt packet is skipped, not fatal.
    Each chunk is written into an array from `chunks` (None: a new one each, which the caller may keep).

    Frames before `start` are decoded and dropped (no seek: a seek lands on a keyframe, and decode
    indices must match the ones counted from the beginning). Every frame is converted to the size of
    the first one, so a mid-stream size change cannot break a chunk. Each frame is converted once, straight
    into its chunk, turned upright as the stream's display matrix says (a phone's portrait video comes out
    portrait, as a player shows it: faces lying on their side are not found). decord turns a video by 180
    degrees itself and fails on 90, where "auto" continues with this source.
    """
    import av

    new_chunk = chunks or (lambda shape: np.empty(shape, np.uint8))
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = max(num_threads, 1)
        index, skipped, size, turns = 0, 0, (0, 0), 0
        chunk, filled = np.empty((0, 0, 0, 3), np.uint8), 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:  # a broken container ends the stream here
                log.warning("%s: demuxing stopped after %d frames: %s", path, index, err)
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError:  # a corrupt packet: its frames are lost, the stream goes on
                skipped += 1
                continue
            for frame in frames:
                index += 1
                if index <= start:
                    continue
                if filled == len(chunk):
                    if filled:
                        yield chunk  # (n, H, W, 3) uint8
                    if not size[0]:  # the first frame sets the size and the turn of all
                        size, turns = (frame.width, frame.height), quarter_turns(frame.rotation)
                    shown = size[::-1] if turns % 2 else size  # (W, H) as displayed
                    chunk, filled = new_chunk((chunk_frames, shown[1], shown[0], 3)), 0
                chunk[filled] = np.rot90(_rgb(frame, size), turns)  # (H, W, 3) upright
                filled += 1
        if filled:
            yield chunk[:filled]
        if skipped:
            log.warning("%s: %d corrupt packets skipped", path, skipped)


SOURCES: dict[str, FrameSource] = {"decord": decord_source, "pyav": pyav_source}


class _Slot:
    """A memory file (memfd) shared with the parent, holding one chunk at a time.

    Fresh shared memory costs a page fault per 4 KiB on first touch, so slots are reused: the parent
    views a chunk in place and hands its slot back once nothing views that chunk any more. The pool
    grows only while the parent holds more chunks than there are slots.
    """

    def __init__(self, conn: Connection, number: int, nbytes: int) -> None:
        self.fd = os.memfd_create("lwaffect-frames")
        os.ftruncate(self.fd, nbytes)
        self.buf = mmap.mmap(self.fd, nbytes)
        self.nbytes = nbytes
        conn.send(("slot", number, nbytes))
        send_handle(conn, self.fd, os.getppid())

    def close(self) -> None:
        try:
            self.buf.close()
        except BufferError:  # an array lent to the source still views it: unmapped once that array goes
            pass
        os.close(self.fd)


def serve(
    conn: Connection, source: FrameSource, path: str, start: int, chunk_frames: int, num_threads: int
) -> bool:
    """Run `source` and send its chunks to the parent, then ("done", None) or ("error", reason); whether the
    job ended with "done" (the child may then take another).

    A chunk is written into a free slot (("slot", number, nbytes) and its descriptor announce a new one;
    slots are numbered from 0 in each job) and announced as ("chunk", shape, "slot", number); where there
    is no memfd it follows ("chunk", shape, "bytes", None) as bytes. The parent answers ("next", [slots it
    no longer uses]); the source works on the next chunk meanwhile. A source that takes `chunks` is lent a
    free slot for each chunk and writes its frames there itself; other sources' chunks are copied in.
    Decoding a 720p video here, each chunk dropped at once: 2.3 -> 2.1 ms per frame (a video after the
    first; its first 3.0 -> 2.7), 1080p 6.6 -> 5.4 (the first 8.4 to 10.9 -> 5.8 to 6.1: a 1080p chunk in the
    source's own memory was above glibc's mmap threshold, so every chunk was fresh pages).
    """
    slots: list[_Slot] = []
    free: list[int] = []  # slots the parent has handed back
    lent: list[tuple[int, np.ndarray]] = []  # at most one: the slot a source is filling, and its array

    def take(nbytes: int) -> int:  # a free slot of at least nbytes, or a new one
        number = next((i for i in free if slots[i].nbytes >= nbytes), None)
        if number is None:
            slots.append(_Slot(conn, len(slots), nbytes))
            return len(slots) - 1
        free.remove(number)
        return number

    def lend(shape: tuple[int, int, int, int]) -> np.ndarray:  # `ChunkBuffers` for a source that takes it
        if lent:  # asked again before it yielded the last one: that slot is free again
            free.append(lent.pop()[0])
        nbytes = int(np.prod(shape))
        number = take(nbytes)
        lent.append((number, np.frombuffer(slots[number].buf, np.uint8, count=nbytes).reshape(shape)))
        return lent[-1][1]

    lending = hasattr(os, "memfd_create") and "chunks" in inspect.signature(source).parameters
    try:
        for frames in source(path, start, chunk_frames, num_threads, **({"chunks": lend} if lending else {})):
            if len(frames) == 0:
                continue
            if len(frames) > chunk_frames or frames.dtype != np.uint8 or frames.ndim != 4:
                raise ValueError(f"source returned a bad chunk {frames.shape} {frames.dtype}")
            if lent and _starts(frames, lent[0][1]):  # written in place: the slot goes to the parent as it is
                conn.send(("chunk", frames.shape, "slot", lent.pop()[0]))
            elif hasattr(os, "memfd_create"):
                number = take(frames.nbytes // len(frames) * chunk_frames)
                np.frombuffer(slots[number].buf, np.uint8, count=frames.size).reshape(frames.shape)[...] = (
                    frames
                )
                conn.send(("chunk", frames.shape, "slot", number))
            else:
                conn.send(("chunk", frames.shape, "bytes", None))
                conn.send_bytes(np.ascontiguousarray(frames).data.cast("B"))
            reply = conn.recv()
            if not (isinstance(reply, tuple) and reply[0] == "next"):
                return False
            free.extend(reply[1])
        conn.send(("done", None))
        return True
    except BaseException as err:  # everything goes back to the parent, which decides what to do
        try:
            conn.send(("error", f"{type(err).__name__}: {err}"))
        except OSError:
            pass
        return False
    finally:
        lent.clear()
        for slot in slots:  # the parent's mappings keep the chunks it still views
            slot.close()


def _starts(frames: np.ndarray, chunk: np.ndarray) -> bool:
    """Whether `frames` are the first frames of `chunk` (the same memory, contiguous)."""
    return (
        frames.flags.c_contiguous
        and frames.shape[1:] == chunk.shape[1:]
        and frames.__array_interface__["data"][0] == chunk.__array_interface__["data"][0]
    )


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a hung decoder must not outlive it)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's watchdog still kills it
        pass


def _release_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`): a video's decoded frames
    leave about 60 MB of freed heap at 720p that an idle decoder would otherwise hold."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def main() -> None:
    """Entry point of the child process: `argv[1]` is the socket's file descriptor; the jobs come on it,
    one after another, until the parent closes it or a job does not end with "done"."""
    _die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    conn = Connection(int(sys.argv[1]))
    try:
        while True:
            try:
                source, path, start, chunk_frames, num_threads = conn.recv()
            except EOFError:  # the parent closed the socket: no more jobs
                return
            except BaseException as err:  # e.g. the source's module cannot be imported here
                conn.send(("error", f"bad job: {type(err).__name__}: {err}"))
                return
            conn.send(("ready", None))  # started: from here on the parent's stall timeout applies
            if not serve(conn, source, path, start, chunk_frames, num_threads):
                return
            _release_memory()  # idle until the next job
    finally:
        conn.close()
