"""The container probe (metadata, no decoding), decoded frame counts, and the catalogue's lazy probe cache."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline.video.probe as probe
from pipeline.datasets import load_catalogue
from pipeline.datasets.summary import format_summary
from pipeline.video.probe import VideoError, count_decoded_frames, probe_video
from tests.helpers import write_video


def grey_frames(count: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """`count` flat grey RGB frames (count, H, W, 3), a different grey each."""
    width, height = size
    return np.stack([np.full((height, width, 3), (i * 17) % 256, dtype=np.uint8) for i in range(count)])


@pytest.mark.parametrize(
    ("name", "codec", "fps"), [("a.mp4", "libx264", 25), ("b.avi", "mpeg4", 30), ("c.mkv", "libx264", 24)]
)
def test_probe_reads_container_metadata(tmp_path, name, codec, fps):
    path = write_video(tmp_path / name, grey_frames(12, (64, 48)), fps=fps, codec=codec)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count) == (64, 48, 12)
    assert info.fps == pytest.approx(fps)
    assert info.duration_s == pytest.approx(12 / fps, abs=1.5 / fps)
    assert count_decoded_frames(path) == 12


def test_unreadable_files_raise_video_error_naming_the_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    good = write_video(tmp_path / "good.mp4", grey_frames(10))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = [
        (junk, "cannot open"),
        (empty, "empty file"),
        (tmp_path / "none.mp4", "no such file"),
        (truncated, ""),
    ]
    for path, reason in cases:
        for function in (probe_video, count_decoded_frames):
            with pytest.raises(VideoError) as info:
                function(path)
            assert str(path) in str(info.value) and reason in info.value.reason and info.value.path == path


def test_catalogue_probes_lazily_once_per_video(tmp_path, monkeypatch):
    write_video(tmp_path / "batch1" / "v.mp4", grey_frames(6))
    ann = tmp_path / "Annotations" / "VA_Estimation_Challenge" / "Train_Set" / "v.txt"
    ann.parent.mkdir(parents=True)
    ann.write_text("valence,arousal\n" + "0.1,0.1\n" * 5)  # one line fewer than the container's frames
    calls = []
    real = probe.probe_video
    monkeypatch.setattr(probe, "probe_video", lambda path: calls.append(path) or real(path))
    cat = load_catalogue(tmp_path)
    assert calls == []  # building the catalogue never probes
    assert cat.video_info("v").frame_count == 6 and cat.video_info("v").frame_count == 6
    assert calls == [tmp_path / "batch1" / "v.mp4"]
    assert count_decoded_frames(cat.videos["v"].path) == 6
    text = format_summary(cat, probe=True)
    row = next(line.split() for line in text.splitlines() if line.startswith("va    train"))
    assert row[2:] == ["1", "1", "5", "5", "6", "0", "1"]  # ..., container frames, unreadable, mismatches
    assert len(calls) == 1
