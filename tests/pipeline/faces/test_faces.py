"""Face detection and tracking: scripted detections (no MTCNN) for the tracker's logic, then real MTCNN
on encoded videos of a real face with known boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from skimage.data import astronaut

from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import box_iou, detect_faces, downscale, load_detector
from pipeline.faces.track import SOURCES, FaceRecords, FaceTracker
from pipeline.synth.faces import SOURCE_BOX, SOURCE_LANDMARKS
from pipeline.video.decode import iter_chunks
from tests.pipeline.faces.scripted import SCRIPT_CFG, marks_of, track

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- scripted detections ----------------------------------------------------------------------------


def moving_box(i: int) -> np.ndarray:
    return np.array([10 + 2.0 * i, 20 + 0.5 * i, 40 + 2.0 * i, 60 + 0.5 * i])


def test_frames_between_linked_samples_are_interpolated_without_detection():
    n = 40
    recs, calls, _ = track(lambda i: [(moving_box(i), 0.99)], n)
    r = recs["main"]
    assert r.index.tolist() == list(range(n)) and r.face.all()
    assert sorted(calls) == [*range(0, n, 5), n - 1]  # samples and the last frame only
    truth = np.stack([moving_box(i) for i in range(n)])
    np.testing.assert_allclose(r.box, truth, atol=1e-3)
    np.testing.assert_allclose(r.landmarks, np.stack([marks_of(b) for b in truth]), atol=1e-3)
    detected = set(calls)
    assert all(r.source[i] == ("detected" if i in detected else "tracked") for i in range(n))


def gappy(i: int):
    """A face missed on frames 14-16 (short gap, sample 15 included) and absent on frames 30-49 (long gap)."""
    if 14 <= i <= 16 or 30 <= i < 50:
        return []
    return [(moving_box(i), 0.99)]


def test_short_gaps_are_filled_and_long_gaps_have_no_face():
    recs, _, _ = track(gappy, 70)
    r = recs["main"]
    assert r.face[14:17].all() and (r.source[14:17] == "interpolated").all()
    assert r.source[13] == "detected" and r.source[17] == "detected"  # the frames around it were looked at
    np.testing.assert_allclose(r.box[14:17], np.stack([moving_box(i) for i in range(14, 17)]), atol=1e-3)
    assert not r.face[30:50].any() and (r.source[30:50] == "none").all()
    assert (r.box[30:50] == 0).all()
    assert r.source[29] == "detected" and r.source[50] == "detected"  # both ends found to the frame
    assert r.face[:30].all() and r.face[50:].all()


def test_a_face_appearing_between_samples_is_found_on_its_first_frame():
    recs, calls, _ = track(lambda i: [(moving_box(i), 0.99)] if i >= 13 else [], 30)
    r = recs["main"]
    assert not r.face[:13].any() and r.face[13:].all()
    assert r.source[13] == "detected" and 13 in calls


def test_low_scores_are_ignored():
    recs, _, _ = track(lambda i: [(moving_box(i), 0.5)], 20)
    assert not recs["main"].face.any()


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunk_size_does_not_change_the_records(chunk):
    reference, _, _ = track(gappy, 70, chunk=16)
    recs, _, pushes = track(gappy, 70, chunk=chunk)
    for field in ("index", "face", "box", "landmarks", "score", "source"):
        np.testing.assert_array_equal(getattr(recs["main"], field), getattr(reference["main"], field))
    # every push returns consecutive frames, lagging the pushed ones by a bounded number of frames
    emitted = 0
    for c, out in pushes:
        r = out["main"]
        assert r.index.tolist() == list(range(emitted, emitted + len(r)))
        emitted += len(r)
        assert emitted >= c.stop - SCRIPT_CFG.every - SCRIPT_CFG.max_gap - 1


def test_left_and_right_follow_the_two_faces():
    def two(i):
        left = (np.array([10.0 + i, 20, 40 + i, 60]), 0.99)
        right = (np.array([100.0 - i, 25, 130 - i, 65]), 0.995)
        faces = [left] if 20 <= i < 40 else [left, right]
        return faces[::-1] if i % 2 else faces  # the detector's order says nothing

    recs, _, _ = track(two, 60, positions=("left", "right"))
    left, right = recs["left"], recs["right"]
    assert left.face.all()
    np.testing.assert_allclose(left.box[:, 0], 10.0 + np.arange(60), atol=1e-3)
    assert not right.face[20:40].any() and right.face[:20].all() and right.face[40:].all()
    np.testing.assert_allclose(right.box[right.face, 0], 100.0 - np.flatnonzero(right.face), atol=1e-3)


def test_main_stays_on_its_face_unless_another_is_much_stronger():
    a = np.array([10.0, 10, 40, 40])  # area 900

    def scene(i):
        if i < 10:
            return [(a, 0.99)]
        b = np.array([100.0, 10, 137, 47]) if i < 30 else np.array([90.0, 5, 150, 65])  # 1.5x, then 4x
        return [(b, 0.99), (a, 0.99)]

    recs, _, _ = track(scene, 50)
    r = recs["main"]
    assert (r.box[:30, 0] == 10.0).all()
    assert (r.box[35:, 0] == 90.0).all()


def test_iou_of_boxes():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]], float)
    assert box_iou(a, b) == pytest.approx([1.0, 0.0, 50 / 150])


def test_downscale_keeps_the_aspect_ratio_and_the_picture():
    frames = np.stack([astronaut()[:240, :320]] * 2)  # (2, 240, 320, 3)
    small = downscale(frames, 160)
    assert small.dtype == torch.uint8 and tuple(small.shape) == (2, 120, 160, 3)
    assert abs(float(small.float().mean()) - float(frames.mean())) < 2.0
    assert tuple(downscale(frames, 400).shape) == frames.shape  # never enlarged


# ---- MTCNN on real encoded video --------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    return load_detector()


def test_detect_faces_returns_float_arrays_per_frame(detector):
    img = astronaut()  # 512 x 512, one face
    frames = np.stack([img, np.full_like(img, 128), img])
    found = detect_faces(frames, detector)
    assert [len(f) for f in found] == [1, 0, 1]
    for f in found:
        assert f.boxes.dtype == f.scores.dtype == f.landmarks.dtype == np.float32
        assert f.boxes.shape == (len(f), 4) and f.landmarks.shape == (len(f), 5, 2)
    assert box_iou(found[0].boxes[0], np.array(SOURCE_BOX)) > 0.85
    assert np.abs(found[0].landmarks[0] - np.array(SOURCE_LANDMARKS)).max() < 6
    with torch.autocast("cpu", dtype=torch.bfloat16):  # MTCNN must not run under bf16 autocast
        again = detect_faces(frames[:1], detector)
    np.testing.assert_allclose(again[0].boxes, found[0].boxes, atol=1e-3)


def _chosen_videos(root: Path) -> list[dict]:
    """The no-face video, the two-subject video and the first other one."""
    videos = json.loads((root / "synth_manifest.json").read_text())["videos"]
    special = [v for v in videos if v["no_face_frames"] or len(v["subjects"]) > 1]
    plain = [v for v in videos if v not in special][:1]
    return special + plain


@pytest.mark.parametrize("follow", ["detect", "refine"])
def test_tracker_finds_the_true_faces_in_encoded_video(synth_affwild2: Path, follow):
    cfg = FaceConfig(follow=follow)
    detector = load_detector(cfg=cfg)
    videos = _chosen_videos(synth_affwild2)
    assert any(v["no_face_frames"] for v in videos) and any(len(v["subjects"]) == 2 for v in videos)
    ious, found, faces, false = [], 0, 0, 0
    for v in videos:
        truth = pq.read_table(synth_affwild2 / "synth_truth" / f"{v['name']}.parquet").to_pandas()
        positions = tuple(s.rsplit("_", 1)[1] if len(v["subjects"]) > 1 else "main" for s in v["subjects"])
        tracker = FaceTracker(cfg, positions, detector=detector)
        parts = {p: [] for p in positions}
        for chunk in iter_chunks(synth_affwild2 / v["path"]):
            for p, r in tracker.push(chunk).items():
                parts[p].append(r)
        for p, r in tracker.flush().items():
            parts[p].append(r)
        assert tracker.detected_frames < v["frames"]
        if follow == "refine":  # whole frames only now and then: the faces are followed by refinement
            assert tracker.detected_frames < v["frames"] / cfg.every and tracker.refined_boxes > 0
        for subject, pos in zip(v["subjects"], positions, strict=True):
            r = FaceRecords.concat(parts[pos])
            t = truth[truth.subject == subject].sort_values("index")
            assert r.index.tolist() == list(range(v["frames"])) == t["index"].tolist()
            has = t.face.to_numpy()
            iou = box_iou(r.box, t[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
            ious.append(iou[has & r.face])
            found += int((has & r.face & (iou >= 0.5)).sum())  # the subject's own face, not just a box
            faces += int(has.sum())
            false += int((~has & r.face).sum())
            assert (r.source[~r.face] == "none").all() and (r.source[r.face] != "none").all()
            assert set(r.source) <= set(SOURCES) and ("refined" in r.source) == (follow == "refine")
            if len(positions) == 2:  # the right person, not just a face
                assert np.median(iou[has & r.face]) >= 0.85, subject
        for start, stop in v["no_face_frames"]:
            r = FaceRecords.concat(parts["main"])
            assert (r.source[start:stop] == "none").sum() >= stop - start - 2  # a frame of slack at each end
    assert found / faces >= 0.98
    assert np.median(np.concatenate(ious)) >= 0.85
    assert false <= 2 * sum(len(v["no_face_frames"]) for v in videos)
