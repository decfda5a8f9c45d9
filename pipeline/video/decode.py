"""Video decoding in bounded chunks, in a watched child process: PyAV, or decord with PyAV where it fails.

`iter_chunks(path, cfg)` yields `FrameChunk`s of at most `cfg.chunk_frames` frames with contiguous decode
indices from 0, holding only a few chunks in memory whatever the video's length. Each frame source
(`pipeline.video.sources`) runs in a child process that hands chunks back through shared memory; when the child
reports an error, dies, or sends nothing for `stall_timeout_s` (decord can deadlock holding the GIL when a
container claims more frames than it holds, dmlc/decord#373), the child is killed and the next source
continues from the first frame not yet delivered. When every source fails, `VideoError(path, reason)`.

Backends: "pyav" (the default: at 720p it decoded about 1.6x the frames per CPU-second of decord, here on
two shared cores, as its RGB conversion is written straight into the chunk), "decord", or "auto" (decord
first, PyAV from the first frame decord did not deliver). The child process costs one more copy of every
frame, into a shared slot that the caller views in place (the slot goes back to the child when nothing
views the chunk any more); `isolate=False` decodes in place, without a watchdog.

A child that delivered its whole video waits, idle, for the next one (`MAX_IDLE_DECODERS` per thread):
a face worker decodes video after video in one child instead of starting an interpreter and importing
numpy and PyAV for each (about 0.25 s of CPU and 0.15 s before the first chunk, per video). A child that
failed, stalled or was left early is killed, never used again; one that died while idle is replaced.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import weakref
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.video.probe import VideoError
from pipeline.video.sources import SOURCES, FrameSource

__all__ = ["DecodeConfig", "FrameChunk", "VideoError", "iter_chunks"]


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeConfig:
    """How videos are decoded."""

    chunk_frames: int = 64  # frames per chunk: memory is a few chunks, whatever the video's length
    backend: Literal["auto", "decord", "pyav"] = "pyav"  # auto: decord first, PyAV from where it failed
    stall_timeout_s: float = 30.0  # a decoder that sends nothing for this long is killed
    start_timeout_s: float = 120.0  # time a decoder process may take to start (import, read the job)
    num_threads: int = 1  # decoder threads (1 or 2: decord fails on some files above 2)
    isolate: bool = True  # run sources in a watched child process; False: in this process, no watchdog

    def __post_init__(self) -> None:
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if not 1 <= self.num_threads <= 2:
            raise ValueError(f"num_threads must be 1 or 2, got {self.num_threads}")
        if self.backend not in ("auto", "decord", "pyav"):
            raise ValueError(f"unknown backend {self.backend!r}")
        if self.stall_timeout_s <= 0 or self.start_timeout_s <= 0:
            raise ValueError("stall_timeout_s and start_timeout_s must be > 0")


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive decoded frames of one video."""

    start: int  # 0-based decode index of frames[0]
    frames: np.ndarray  # (n, H, W, 3) uint8 RGB

    @property
    def stop(self) -> int:
        """Decode index one past the last frame."""
        return self.start + len(self.frames)


class SourceFailed(Exception):
    """A frame source stopped before the end of the video (error, death of its process, or stall)."""


def _child_env() -> dict[str, str]:
    """The environment of a decoder process: this interpreter's import path, so that `pipeline` and any
    injected source's module import there too."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    paths = [root, *(str(Path(p).resolve()) for p in sys.path if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


class _Decoder:
    """A decoder process (`pipeline.video.sources.main`) and this end of its socket. It serves one job (a
    source on a video) after another: `iter_chunks` gives it back to `_IDLE` after a job that ended cleanly,
    and kills it after any other (an error, a stall, a caller that stopped early)."""

    def __init__(self) -> None:
        self.conn, child_conn = mp.Pipe()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from pipeline.video.sources import main; main()",
                    str(child_conn.fileno()),
                ],
                pass_fds=(child_conn.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        except OSError as err:  # e.g. out of processes or file descriptors
            self.conn.close()
            raise SourceFailed(f"cannot start a decoder process: {err}") from err
        finally:
            child_conn.close()
        self.jobs = 0  # jobs sent to it

    def send(self, job: tuple) -> bool:
        """Send a job; whether it went (a process that died while idle takes none)."""
        if self.proc.poll() is not None:
            return False
        try:
            self.conn.send(job)
        except OSError:  # it died just now
            return False
        self.jobs += 1
        return True

    def close(self) -> None:
        """Kill the process (if it still runs) and close the socket."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.conn.close()


MAX_IDLE_DECODERS = 1  # decoder processes kept per thread between two videos (idle: about 40 MB each)


class _Idle(threading.local):
    """Each thread's decoders waiting for their next job. Per thread, because a child dies with the thread
    that started it (`PR_SET_PDEATHSIG` follows the thread): another thread's could die mid-video."""

    def __init__(self) -> None:
        self.decoders: list[_Decoder] = []


_IDLE = _Idle()


def _give_back(decoder: _Decoder) -> None:
    if len(_IDLE.decoders) < MAX_IDLE_DECODERS:
        _IDLE.decoders.append(decoder)
    else:
        decoder.close()


def _decoder_for(job: tuple) -> _Decoder:
    """A decoder process that has taken `job`: this thread's idle one where it is alive, else a new one."""
    while _IDLE.decoders:
        decoder = _IDLE.decoders.pop()
        if decoder.send(job):
            return decoder
        decoder.close()
    decoder = _Decoder()
    if not decoder.send(job):
        decoder.close()
        raise SourceFailed(f"decoder process died on start (exit code {decoder.proc.poll()})")
    return decoder


def _run_isolated(
    source: FrameSource, path: Path, start: int, cfg: DecodeConfig
) -> Generator[np.ndarray, None, None]:
    """Run `source` in a watched child process; yield its chunks, each one a fresh array of the caller's."""
    job = (source, str(path), start, cfg.chunk_frames, cfg.num_threads)
    decoder = _decoder_for(job)
    slots: dict[int, mmap.mmap] = {}  # the child's shared buffers of this job, by number
    released: deque[int] = deque()  # slots whose chunk nothing views any more (filled by finalizers)
    started = clean = False  # the child said "ready"; the job ended with "done" (it may take the next)
    try:
        while True:
            timeout = cfg.stall_timeout_s if started else cfg.start_timeout_s
            if not decoder.conn.poll(timeout):
                raise SourceFailed(f"stalled: nothing for {timeout:g} s")
            try:
                kind, *payload = decoder.conn.recv()
                if kind == "slot":  # a new shared buffer of the child: map it once
                    number, nbytes = payload
                    fd = recv_handle(decoder.conn)
                    slots[number] = mmap.mmap(fd, nbytes)
                    os.close(fd)
                elif kind == "chunk":
                    frames = _receive_frames(decoder.conn, slots, released, *payload)
            except (EOFError, OSError, RuntimeError) as err:
                if decoder.jobs > 1 and not started:  # a process kept idle died before it took the job
                    decoder.close()
                    decoder = _decoder_for(job)
                    continue
                raise SourceFailed(f"decoder process died (exit code {decoder.proc.poll()})") from err
            if kind == "ready":
                started = True
            elif kind == "chunk":
                # the child decodes the next chunk while the caller works on this one
                decoder.conn.send(("next", [released.popleft() for _ in range(len(released))]))
                yield frames
                del frames  # the caller's references alone decide when the slot goes back
            elif kind == "done":
                clean = True
                return
            elif kind == "error":
                raise SourceFailed(str(payload[0]))
    finally:
        if clean:
            _give_back(decoder)
        else:
            decoder.close()
        slots.clear()  # a mapping lives on while the caller still views a chunk in it


class _Lease:
    """One chunk's frames in a shared slot, as numpy sees them (`__array_interface__`, no copy). Every
    array viewing the chunk keeps its lease alive; when the last one is gone, a finalizer hands the slot
    back (see `_receive_frames`)."""

    def __init__(self, slot: mmap.mmap, shape: tuple[int, ...]) -> None:
        self._bytes = (ctypes.c_uint8 * int(np.prod(shape))).from_buffer(slot)  # keeps the slot mapped
        self.__array_interface__ = {
            "shape": tuple(shape),
            "typestr": "|u1",
            "data": (ctypes.addressof(self._bytes), False),
            "version": 3,
        }


def _receive_frames(
    conn: Connection,
    slots: dict[int, mmap.mmap],
    released: deque[int],
    shape: tuple[int, ...],
    how: str,
    number: int | None,
) -> np.ndarray:
    """The frames of one chunk (n, H, W, 3) uint8: a view of its shared slot, or received as bytes."""
    if how == "slot":
        if number not in slots:
            raise RuntimeError(f"chunk in slot {number} before the slot")
        lease = _Lease(slots[number], shape)
        weakref.finalize(lease, released.append, number)
        return np.asarray(lease)
    frames = np.empty(shape, np.uint8)
    conn.recv_bytes_into(frames.data.cast("B"))
    return frames


def _run_inline(
    source: FrameSource, path: Path, start: int, cfg: DecodeConfig
) -> Generator[np.ndarray, None, None]:
    """Run `source` in this process, without a watchdog (`DecodeConfig.isolate=False`)."""
    try:
        yield from source(str(path), start, cfg.chunk_frames, cfg.num_threads)
    except Exception as err:
        raise SourceFailed(f"{type(err).__name__}: {err}") from err


def default_sources(cfg: DecodeConfig) -> tuple[FrameSource, ...]:
    """The sources tried in order for `cfg.backend`."""
    if cfg.backend == "auto":
        return (SOURCES["decord"], SOURCES["pyav"])
    return (SOURCES[cfg.backend],)


def iter_chunks(
    path: str | Path, cfg: DecodeConfig = DecodeConfig(), sources: Sequence[FrameSource] | None = None
) -> Iterator[FrameChunk]:
    """Decode `path` into chunks with contiguous decode indices from 0.

    `sources` overrides the sources chosen by `cfg.backend` (each one a `pipeline.video.sources.FrameSource`,
    tried in order, each continuing from the first frame not yet delivered). Raises `VideoError` naming
    the file when no source can decode any frame, or when the last source fails mid-stream.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    run = _run_isolated if cfg.isolate else _run_inline
    delivered, reasons = 0, []
    for source in sources if sources is not None else default_sources(cfg):
        name = getattr(source, "__name__", type(source).__name__)
        chunks = run(source, path, delivered, cfg)
        try:
            for frames in chunks:
                yield FrameChunk(start=delivered, frames=frames)
                delivered += len(frames)
        except SourceFailed as err:
            reasons.append(f"{name} at frame {delivered}: {err}")
            log.warning("%s: %s failed at frame %d (%s); trying the next decoder", path, name, delivered, err)
            continue
        finally:
            chunks.close()  # kills the child when the caller stops early
        if delivered > 0:
            return
        reasons.append(f"{name}: no frames")
    raise VideoError(path, "; ".join(reasons) if reasons else "no decoder")
