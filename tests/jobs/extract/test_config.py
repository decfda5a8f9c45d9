"""The extraction's configs: decoded chunks bounded in bytes, blocks between stages sized to a chunk."""

from __future__ import annotations

import pytest

from jobs.extract.config import FaceSettings
from jobs.extract.runtime import RuntimeConfig


def test_blocks_between_stages_hold_a_decode_chunk_of_crops_and_at_most_two_seconds_of_video():
    crop_bytes = 3 * FaceSettings().crop_size ** 2  # uint8 (3, S, S) per row
    rows = RuntimeConfig().block_bytes / crop_bytes
    # the backbone gets its first block once this many frames' crops are made: 2 s at 30 frames/s
    assert FaceSettings().decode.chunk_frames <= rows <= 64


def test_decoded_chunks_are_bounded_in_bytes_whatever_the_resolution():
    settings = FaceSettings()
    frames = {
        size: settings.decode_for(*size).chunk_frames
        for size in ((320, 240), (1280, 720), (1920, 1080), (2560, 1440))
    }
    assert frames == {(320, 240): 8, (1280, 720): 8, (1920, 1080): 8, (2560, 1440): 4}
    assert settings.decode_for(7680, 4320).chunk_frames == 1  # one 8K frame is 100 MB: never zero
    for (width, height), n in frames.items():
        assert n * width * height * 3 <= settings.chunk_bytes


def test_faces_are_aligned_at_the_backbones_input_size(tmp_path):
    from jobs.extract.config import ExtractConfig, sized

    faces, backbone = sized("detect", trainable_blocks=3, input_size=112)
    assert faces.crop_size == 112 and faces.spec()["crop_size"] == 112 and backbone.trainable_blocks == 3
    ExtractConfig(input=tmp_path, cache="c", faces=faces, backbone=backbone)
    with pytest.raises(ValueError, match="the face crops are 224 px but the backbone takes 112 px"):
        ExtractConfig(input=tmp_path, cache="c", backbone=backbone)
