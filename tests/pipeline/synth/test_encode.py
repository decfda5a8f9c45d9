"""The synthetic videos are the same files on every machine: `write_video` runs x264 with a fixed thread
count (`ENCODE_THREADS`), so the CPUs a process may use do not change the bitstream."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

WRITE = """
import os, sys
from pathlib import Path
os.sched_setaffinity(0, {int(c) for c in sys.argv[2].split(",")})
from pipeline.synth.hard import write_hard
write_hard(Path(sys.argv[1]), "edge", 0.5, 3)
"""


def _written(path: Path, cpus: set[int]) -> str:
    """The digest of the `edge` hard video (seed 3, 15 frames of 640x360) written by a fresh interpreter
    that may use only `cpus`."""
    root = Path(__file__).resolve().parents[3]
    subprocess.run(
        [sys.executable, "-c", WRITE, str(path), ",".join(map(str, sorted(cpus)))],
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to compare one with several")
def test_a_video_is_the_same_file_whatever_cpus_its_writer_may_use(tmp_path):
    cpus = os.sched_getaffinity(0)
    one = _written(tmp_path / "one.mp4", {min(cpus)})
    every = _written(tmp_path / "every.mp4", cpus)
    assert one == every
