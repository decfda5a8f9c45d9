"""The generator's harder settings for the learnability study: several identities from the one photo,
label cues that overlap, faceless stretches in many videos; all off by default and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.faces.detect import detect_faces, load_detector
from pipeline.synth.affwild2 import plan_videos
from pipeline.synth.common import SynthConfig
from pipeline.synth.dataset import make_dataset
from pipeline.synth.faces import FaceState, identity, load_sprite, render_face
from pipeline.synth.video import overlap_cues
from tests.pipeline.synth.test_affwild2_layout import manifest, truth

HARD = dict(identities=5, overlap=1.0, no_face_share=1.0)


def test_identities_differ_from_the_photo_and_keep_their_landmarks_in_order():
    base = load_sprite(0)
    assert identity(0).width == 1.0 and not identity(0).mirror and identity(0).beard == 0.0
    for k in range(1, 6):
        sprite = load_sprite(k)
        x1, y1, x2, y2 = sprite.box
        eyes, mouth = sprite.landmarks[:2], sprite.landmarks[3:]
        assert x1 < x2 and y1 < y2 and ((sprite.landmarks >= [x1, y1]) & (sprite.landmarks <= [x2, y2])).all()
        assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # left, right in the image, mirrored too
        assert sprite.rgb.shape != base.rgb.shape or not np.array_equal(sprite.rgb, base.rgb)
    assert identity(3) == identity(3) and identity(3) != identity(4)


def test_mtcnn_finds_every_identity_under_the_overlapping_tints():
    detector = load_detector()
    frames, boxes = [], []
    for k in range(5):
        for tint, strength, shift in ((7, 0.4, 0.0), (1, 1.0, -25.0), (5, 1.0, 25.0)):
            frame = np.full((360, 360, 3), 110, np.uint8)
            state = FaceState(180, 190, 130, 0.2 + 0.15 * k, 0.5, tint, (True,) * 12, k, strength, shift)
            boxes.append(render_face(frame, state)[0])
            frames.append(frame)
    found = detect_faces(np.stack(frames), detector)
    for f, box in zip(found, boxes, strict=True):
        assert len(f) >= 1
        ix = max(0, min(f.boxes[0][2], box[2]) - max(f.boxes[0][0], box[0]))
        iy = max(0, min(f.boxes[0][3], box[3]) - max(f.boxes[0][1], box[1]))
        union = np.prod(box[2:] - box[:2]) + np.prod(f.boxes[0][2:] - f.boxes[0][:2]) - ix * iy
        assert ix * iy / union > 0.7


def test_the_last_identity_is_only_seen_at_validation_and_test():
    cfg = SynthConfig(output=None, identities=4)  # type: ignore[arg-type]
    assert {cfg.identity_of(n, "train") for n in range(20)} == {0, 1, 2}
    assert {cfg.identity_of(n, "validation") for n in range(20)} == {0, 1, 2, 3}
    assert {SynthConfig(output=None).identity_of(n, "train") for n in range(5)} == {0}  # type: ignore[arg-type]


def test_overlapping_cues_vary_per_tint_stretch_within_their_range():
    tint = np.array([1, 1, 1, 4, 4, 1, 1])
    strength, shift = overlap_cues(tint, 1.0, np.random.default_rng(0))
    for a, b in ((0, 3), (3, 5), (5, 7)):  # constant over each run of one tint
        assert len(set(strength[a:b])) == 1 and len(set(shift[a:b])) == 1
    assert ((0.4 <= strength) & (strength <= 1)).all() and (np.abs(shift) <= 25).all()
    none = overlap_cues(tint, 0.0, np.random.default_rng(0))
    assert (none[0] == 1).all() and (none[1] == 0).all()


def test_a_share_of_videos_gets_a_faceless_stretch_of_its_own():
    plain = plan_videos(SynthConfig(output=None, videos=12))  # type: ignore[arg-type]
    every = plan_videos(SynthConfig(output=None, videos=12, no_face_share=1.0))  # type: ignore[arg-type]
    assert sum(bool(p.no_face) for p in plain) == 1
    assert all(p.no_face for p in every) and every[1].no_face == plain[1].no_face  # video 2 as before
    for p in every:
        ((start, stop),) = p.no_face
        assert 0 < start < stop < p.frames
    with pytest.raises(ValueError, match="overlap"):
        make_dataset(SynthConfig(output=None, overlap=2.0))  # type: ignore[arg-type]


def test_a_hard_data_set_is_deterministic_and_its_labels_follow_the_truth(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        make_dataset(SynthConfig(output=root, videos=3, seconds=0.6, **HARD))
    assert manifest(a) == manifest(b)
    for video in manifest(a)["videos"]:
        assert truth(a, video["name"]).equals(truth(b, video["name"]))
        assert video["no_face_frames"]  # every video has its stretch
        t = truth(a, video["name"])
        face = t.loc[t["subject"] == video["subjects"][0], "face"].to_numpy(bool)
        assert (~face).sum() == sum(stop - start for start, stop in video["no_face_frames"])
    texts = {p.relative_to(a): p.read_text() for p in sorted(a.rglob("*.txt"))}
    assert texts == {p.relative_to(b): p.read_text() for p in sorted(b.rglob("*.txt"))}
    name = manifest(a)["videos"][0]["name"]
    expr = (a / "8th_ABAW_Annotations/EXPR_Recognition_Challenge/Train_Set" / f"{name}.txt").read_text()
    labels = np.array([int(x) for x in expr.splitlines()[1:]])
    tint = truth(a, name)["tint"].to_numpy(np.int64)
    valid = labels >= 0
    np.testing.assert_array_equal(labels[valid], tint[valid])  # still the tint, however faint
