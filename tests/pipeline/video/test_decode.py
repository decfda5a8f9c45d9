"""Decoding in bounded chunks: contiguity, frame counts, decord vs PyAV, bad files, and the watchdog."""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from pipeline.faces.detect import box_iou
from pipeline.video.decode import DecodeConfig, FrameChunk, VideoError, iter_chunks
from pipeline.video.probe import count_decoded_frames
from pipeline.video.sources import pyav_source
from tests.helpers import write_video
from tests.pipeline.video.stalling_sources import lending_source, pid_source, stall_source

FRAMES, WIDTH, HEIGHT = 90, 320, 240


def encode(
    path: Path, frames: int = FRAMES, faststart: bool = False, noise: int = 0, rotation: int = 0
) -> Path:
    """An H.264 video of the astronaut sliding across a grey frame (with fresh noise in every frame);
    `rotation`: stored turned, to be displayed upright (`tests.helpers.write_video`)."""
    face = np.asarray(Image.fromarray(astronaut()).resize((200, 200)))
    rng = np.random.default_rng(0)
    canvas = np.full((frames, HEIGHT, WIDTH, 3), 90, np.uint8)  # (n, H, W, 3)
    for i in range(frames):
        x = i * (WIDTH - 200) // frames
        canvas[i, 20:220, x : x + 200] = face
    if noise:
        canvas = (canvas + rng.integers(0, noise, canvas.shape)).clip(0, 255).astype(np.uint8)
    return write_video(path, canvas, faststart=faststart, rotation=rotation)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return encode(tmp_path_factory.mktemp("decode") / "clip.mp4")


def collect(path: Path, cfg: DecodeConfig, sources=None) -> list[FrameChunk]:
    return list(iter_chunks(path, cfg, sources))


def assert_dead(pidfile: Path) -> None:
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_chunks_contiguous_bounded_and_complete(video, backend):
    chunks = collect(video, DecodeConfig(chunk_frames=16, backend=backend))
    assert [c.start for c in chunks] == list(range(0, FRAMES, 16))
    assert all(0 < len(c.frames) <= 16 for c in chunks)
    assert all(c.frames.shape[1:] == (HEIGHT, WIDTH, 3) and c.frames.dtype == np.uint8 for c in chunks)
    assert sum(len(c.frames) for c in chunks) == count_decoded_frames(video) == FRAMES
    assert chunks[-1].stop == FRAMES


@pytest.mark.timeout(60)
def test_decord_and_pyav_give_the_same_frames(video):
    decord = np.concatenate(
        [c.frames for c in collect(video, DecodeConfig(chunk_frames=32, backend="decord"))]
    )
    pyav = np.concatenate([c.frames for c in collect(video, DecodeConfig(chunk_frames=32, backend="pyav"))])
    assert decord.shape == pyav.shape
    diff = np.abs(decord.astype(np.int16) - pyav.astype(np.int16))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4
    # and the frames really move: the same index in both, not just the same picture
    assert np.abs(pyav[0].astype(np.int16) - pyav[-1]).mean() > 5


@pytest.mark.timeout(60)
def test_shared_slots_go_back_when_the_caller_drops_a_chunk_and_held_chunks_stay_intact(video, monkeypatch):
    import pipeline.video.decode as decode

    slots: set[int] = set()
    lease_init = decode._Lease.__init__

    def recording(self, slot, shape):
        slots.add(id(slot))
        lease_init(self, slot, shape)

    monkeypatch.setattr(decode._Lease, "__init__", recording)
    cfg = DecodeConfig(chunk_frames=8, backend="pyav")
    means = [float(c.frames.mean()) for c in iter_chunks(video, cfg)]  # each chunk dropped at once
    assert len(means) == 12 and len(slots) <= 3  # 12 chunks through at most 3 slots
    slots.clear()
    held = collect(video, cfg)  # every chunk held: each needs its own slot, none is overwritten
    assert len(slots) == 12
    inline = collect(video, DecodeConfig(chunk_frames=8, backend="pyav", isolate=False))
    for a, b in zip(held, inline, strict=True):
        assert np.array_equal(a.frames, b.frames)
    assert np.allclose(means, [float(c.frames.mean()) for c in inline])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_a_rotated_video_is_decoded_upright_and_its_face_found(tmp_path, rotation):
    # a phone's portrait video is stored lying on its side (-90): decoded as stored, its face is not found
    from pipeline.faces.detect import detect_faces, load_detector

    turned = encode(tmp_path / f"turned{rotation}.mp4", frames=10, rotation=rotation)
    plain = encode(tmp_path / "upright.mp4", frames=10)
    upright = np.concatenate([c.frames for c in collect(plain, DecodeConfig(backend="pyav"))])
    for backend in ("pyav", "auto"):  # decord turns 180 itself and fails on 90: "auto" goes on with PyAV
        got = np.concatenate([c.frames for c in collect(turned, DecodeConfig(backend=backend))])
        assert got.shape == upright.shape == (10, HEIGHT, WIDTH, 3)
        assert np.abs(got.astype(int) - upright).mean() < 3  # the same picture, encoded twice
    detector = load_detector("cpu")
    found = detect_faces(got[:1], detector)[0]
    want = detect_faces(upright[:1], detector)[0]
    assert len(found) == len(want) == 1
    assert box_iou(found.boxes[0], want.boxes[0]) > 0.8
    if rotation % 180:
        with av.open(str(turned)) as stored:  # the stored frame, on its side
            side = next(stored.decode(video=0)).to_ndarray(format="rgb24")
        assert side.shape == (WIDTH, HEIGHT, 3) and len(detect_faces(side[None], detector)[0]) == 0


@pytest.mark.timeout(60)
def test_in_process_decoding(video):
    isolated = collect(video, DecodeConfig(chunk_frames=40, backend="pyav"))
    inline = collect(video, DecodeConfig(chunk_frames=40, backend="pyav", isolate=False))
    assert [c.start for c in inline] == [c.start for c in isolated]
    for a, b in zip(isolated, inline, strict=True):
        assert np.array_equal(a.frames, b.frames)


@pytest.mark.timeout(60)
def test_watchdog_kills_a_stalled_decoder_and_pyav_continues(video, tmp_path, caplog):
    pidfile = tmp_path / "pid"
    stalling = functools.partial(stall_source, pidfile=str(pidfile))
    cfg = DecodeConfig(chunk_frames=16, stall_timeout_s=1.0)
    with caplog.at_level(logging.WARNING, logger="pipeline.video.decode"):
        chunks = collect(video, cfg, sources=(stalling, pyav_source))
    assert [c.start for c in chunks] == list(range(0, FRAMES, 16))
    frames = np.concatenate([c.frames for c in chunks])
    reference = np.concatenate([c.frames for c in collect(video, DecodeConfig(backend="pyav"))])
    assert np.array_equal(frames, reference)
    assert "stalled" in caplog.text
    assert_dead(pidfile)


@pytest.mark.timeout(60)
def test_every_decoder_stalling_raises_video_error(video, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    sources = (
        functools.partial(stall_source, pidfile=str(first), after=0),
        functools.partial(stall_source, pidfile=str(second), after=0),
    )
    with pytest.raises(VideoError, match="stalled") as err:
        collect(video, DecodeConfig(stall_timeout_s=0.5), sources=sources)
    assert err.value.path == video
    assert_dead(first)
    assert_dead(second)


@pytest.mark.timeout(60)
def test_stopping_early_kills_the_decoder(video, tmp_path):
    pidfile = tmp_path / "pid"
    chunks = iter_chunks(
        video, DecodeConfig(chunk_frames=8), [functools.partial(stall_source, pidfile=str(pidfile))]
    )
    first = next(chunks)
    assert first.start == 0 and len(first.frames) == 8
    chunks.close()
    assert_dead(pidfile)


@pytest.mark.timeout(60)
def test_one_decoder_process_decodes_one_video_after_another(video, tmp_path):
    # a decoder that ended its video cleanly takes the next: no new interpreter, numpy and PyAV per video
    pidfile = tmp_path / "pids"
    recording = [functools.partial(pid_source, pidfile=str(pidfile))]
    cfg = DecodeConfig(chunk_frames=16)
    first, second = collect(video, cfg, recording), collect(video, cfg, recording)
    reference = np.concatenate([c.frames for c in collect(video, DecodeConfig(isolate=False))])
    for chunks in (first, second):
        assert np.array_equal(np.concatenate([c.frames for c in chunks]), reference)
    pids = pidfile.read_text().split()
    assert len(pids) == 2 and pids[0] == pids[1]
    # another thread decodes in a process of its own (a child dies with the thread that started it)
    other = threading.Thread(target=collect, args=(video, cfg, recording))
    other.start()
    other.join()
    collect(video, cfg, recording)
    *_, theirs, ours = pidfile.read_text().split()
    assert theirs != ours == pids[0]


@pytest.mark.timeout(60)
def test_pyav_writes_each_chunk_into_a_shared_slot_and_its_decoder_takes_the_next_video(video, tmp_path):
    # no copy from a chunk of the source's own into the slot, and the slots it wrote in still close cleanly
    record = tmp_path / "lent"
    lending = [functools.partial(lending_source, record=str(record))]
    cfg = DecodeConfig(chunk_frames=8)
    first, second = collect(video, cfg, lending), collect(video, cfg, lending)  # each chunk held
    inline = collect(video, DecodeConfig(chunk_frames=8, isolate=False))
    for chunks in (first, second):
        assert len(chunks) == len(inline) == 12
        for a, b in zip(chunks, inline, strict=True):
            assert np.array_equal(a.frames, b.frames)
    jobs = [line.split() for line in record.read_text().splitlines()]
    assert [lent for _, lent in jobs] == ["12", "12"]  # every chunk written where the parent views it
    assert jobs[0][0] == jobs[1][0]  # by one process, which took the second video after the first


@pytest.mark.timeout(60)
def test_a_decoder_that_died_while_idle_or_failed_is_not_used_again(video, tmp_path):
    pidfile = tmp_path / "pids"
    recording = [functools.partial(pid_source, pidfile=str(pidfile))]
    cfg = DecodeConfig(chunk_frames=16)
    reference = np.concatenate([c.frames for c in collect(video, DecodeConfig(isolate=False))])
    collect(video, cfg, recording)
    idle = int(pidfile.read_text().split()[-1])
    os.kill(idle, signal.SIGKILL)  # dies between two videos: the next one still decodes, in a new process
    again = collect(video, cfg, recording)
    assert np.array_equal(np.concatenate([c.frames for c in again]), reference)
    replaced = int(pidfile.read_text().split()[-1])
    assert replaced != idle
    stalled = tmp_path / "stalled"
    with pytest.raises(VideoError, match="stalled"):  # the idle one takes this video, stalls and is killed
        collect(
            video, DecodeConfig(stall_timeout_s=0.5), [functools.partial(stall_source, pidfile=str(stalled))]
        )
    assert int(stalled.read_text()) == replaced
    assert_dead(stalled)
    after = collect(video, cfg, recording)
    assert np.array_equal(np.concatenate([c.frames for c in after]), reference)
    assert int(pidfile.read_text().split()[-1]) not in (idle, replaced)


@pytest.mark.timeout(60)
def test_a_kept_decoder_that_dies_as_it_takes_a_video_is_replaced_without_a_failure(
    video, tmp_path, monkeypatch
):
    import pipeline.video.decode as decode

    pidfile = tmp_path / "pids"
    recording = [functools.partial(pid_source, pidfile=str(pidfile))]
    cfg = DecodeConfig(chunk_frames=16)
    collect(video, cfg, recording)  # this thread now keeps a decoder
    send = decode._Decoder.send
    died: list[int] = []

    def send_and_die(self, job):  # the kept one takes the job, then dies before it says "ready"
        sent = send(self, job)
        if sent and self.jobs > 1:
            died.append(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
        return sent

    monkeypatch.setattr(decode._Decoder, "send", send_and_die)
    chunks = collect(video, cfg, recording)
    reference = np.concatenate([c.frames for c in collect(video, DecodeConfig(isolate=False))])
    assert np.array_equal(np.concatenate([c.frames for c in chunks]), reference)
    assert len(died) == 1 and int(pidfile.read_text().split()[-1]) != died[0]


@pytest.mark.timeout(60)
def test_truncated_video_falls_back_to_pyav(tmp_path, caplog):
    # index first, so the container still claims 60 frames; noise keeps the packets of similar size
    whole = encode(tmp_path / "whole.mp4", frames=60, faststart=True, noise=40)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with caplog.at_level(logging.WARNING, logger="pipeline.video.decode"):
        chunks = collect(cut, DecodeConfig(chunk_frames=16, backend="auto", stall_timeout_s=10))
    assert [c.start for c in chunks] == list(range(0, 16 * len(chunks), 16))
    assert 20 < chunks[-1].stop < 60  # the frames that are there, not the 60 claimed
    assert "decord_source failed" in caplog.text


@pytest.mark.timeout(60)
def test_truncated_video_without_index_raises(tmp_path):
    whole = encode(tmp_path / "whole.mp4", frames=30)  # index at the end: cut off with the tail
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:-2000])
    with pytest.raises(VideoError) as err:
        collect(cut, DecodeConfig(backend="auto"))
    assert err.value.path == cut and "cut.mp4" in str(err.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 20])
def test_unreadable_files_raise_video_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError) as err:
        collect(path, DecodeConfig(backend="auto"))
    assert err.value.path == path and "bad.mp4" in str(err.value)


def test_missing_file_and_bad_settings():
    with pytest.raises(VideoError, match="no such file"):
        next(iter_chunks("/nonexistent/video.mp4"))
    with pytest.raises(ValueError):
        DecodeConfig(num_threads=4)
    with pytest.raises(ValueError):
        DecodeConfig(chunk_frames=0)
