"""Frame counts of a failed video's subject: the organiser example, else the container, else none."""

from __future__ import annotations

import numpy as np

from pipeline.datasets.catalogue import Subject, Video
from pipeline.submission.frames import CONTAINER, EXAMPLE, FrameCounter
from tests.helpers import submission_catalogue, write_video


def catalogue_with_videos(tmp_path, frames: int):
    cat = submission_catalogue(tmp_path, "va")
    good = write_video(tmp_path / "1-30-640x360.mp4", np.zeros((frames, 32, 32, 3), np.uint8))
    bad = tmp_path / "2-25-854x480.mp4"
    bad.write_bytes(b"not a video" * 10)
    for name, path in (("1-30-640x360", good), ("2-25-854x480", bad)):
        cat.videos[name] = Video(name=name, path=path)
    cat.subjects["1-30-640x360"] = Subject(name="1-30-640x360", video="1-30-640x360", position="main")
    for side in ("left", "right"):
        cat.subjects[f"2-25-854x480_{side}"] = Subject(
            name=f"2-25-854x480_{side}", video="2-25-854x480", position=side
        )
    return cat


def test_the_example_file_decides_then_the_container_then_nothing(tmp_path):
    cat = catalogue_with_videos(tmp_path, frames=7)
    counter = FrameCounter("va", cat)
    assert counter.count("1-30-640x360") == (7, CONTAINER)
    frames, why = counter.count("2-25-854x480_left")
    assert frames is None and "2-25-854x480.mp4" in why
    example = tmp_path / "example.txt"
    lines = ["image_location,valence,arousal"] + [f"2-25-854x480_left/{f:05d}.jpg,0,0" for f in range(1, 6)]
    example.write_text("\n".join(lines) + "\n")
    cat.example_submissions["va"] = example
    counter = FrameCounter("va", cat)
    assert counter.count("2-25-854x480_left") == (5, EXAMPLE)
    assert counter.count("2-25-854x480_right")[0] is None  # the example does not list it, the file is broken
    assert counter.count("1-30-640x360") == (7, CONTAINER)
