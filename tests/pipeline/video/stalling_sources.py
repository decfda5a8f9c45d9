"""Frame sources that hang, or that say which process ran them, for the decode watchdog and reuse tests.

They live apart from the test module so that the decoder process that imports them starts fast (no torch,
no pytest): the watchdog's stall timeout, not the import time, is what the tests exercise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.video.sources import pyav_source


def stall_source(path: str, start: int, chunk_frames: int, num_threads: int, pidfile: str, after: int = 1):
    """PyAV frames that hang (as decord does on a container claiming too many frames) after `after` chunks;
    the decoder process's id goes to `pidfile`."""
    Path(pidfile).write_text(str(os.getpid()))
    for k, frames in enumerate(pyav_source(path, start, chunk_frames, num_threads)):
        if k == after:
            time.sleep(3600)
        yield frames


def pid_source(path: str, start: int, chunk_frames: int, num_threads: int, pidfile: str):
    """PyAV frames; the decoder process's id is appended to `pidfile`, one line per job."""
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n")
    yield from pyav_source(path, start, chunk_frames, num_threads)


def lending_source(path: str, start: int, chunk_frames: int, num_threads: int, record: str, chunks=None):
    """PyAV frames written into the arrays the decoder process lends (`chunks`, where it lends them); per
    job, the process's id and the number of arrays lent are appended to `record`."""
    lent = []

    def counted(shape):
        lent.append(shape)
        return chunks(shape)

    yield from pyav_source(path, start, chunk_frames, num_threads, chunks=counted if chunks else None)
    with open(record, "a") as f:
        f.write(f"{os.getpid()} {len(lent)}\n")
