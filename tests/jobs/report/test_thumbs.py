"""The report's thumbnails: frames read by seeking, as the extraction decoded them."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.report.thumbs import read_frames
from pipeline.video.decode import DecodeConfig, iter_chunks
from tests.helpers import write_video


@pytest.mark.parametrize("rotation", [0, -90, 180])
def test_frames_are_read_as_the_extraction_decoded_them(tmp_path, rotation):
    # a video displayed turned (a phone's portrait video): the cached boxes are on upright frames
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (12, 6, 8, 3), dtype=np.uint8), 8, axis=1).repeat(8, axis=2)
    path = write_video(tmp_path / "clip.mp4", frames, rotation=rotation)  # (12, 48, 64, 3) as shown
    decoded = np.concatenate([c.frames for c in iter_chunks(path, DecodeConfig(backend="pyav"))])
    read = read_frames(path, [0, 5, 11])
    assert decoded.shape == frames.shape
    for i in (0, 5, 11):
        assert read[i].shape == frames.shape[1:]
        np.testing.assert_array_equal(read[i], decoded[i])
        assert np.abs(read[i].astype(int) - frames[i]).mean() < 12  # upright, as encoded
