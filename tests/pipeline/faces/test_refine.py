"""Refinement with MTCNN's real R-Net and O-Net on frames with the synthetic data set's real face: a
box near the face is brought back onto it, a crop without a face gives no box, contrast normalisation
finds a dim flat face, a small face in a large frame is refined at its own resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.data import astronaut

from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import box_iou, detect_faces, load_detector
from pipeline.faces.refine import lift_contrast, refine_faces
from pipeline.synth.faces import FaceState, make_background, render_face

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = FaceConfig(follow="refine")


@pytest.fixture(scope="module")
def detector():
    return load_detector(cfg=CFG)


def scene(seed: int, size=(360, 640), height: float = 150.0, face: bool = True):
    """A textured background with (or without) the synthetic face at the centre: frame (H, W, 3) uint8,
    the true box (4,) and landmarks (5, 2) (where the face is, or would be)."""
    h, w = size
    frame = make_background(h, w, np.random.default_rng(seed), textured=True)
    state = FaceState(
        cx=w / 2, cy=h / 2, height=height, brightness=0.5, contrast=0.5, tint=0, marks=(False,) * 12
    )
    target = frame.copy()
    box, marks = render_face(target, state)
    return (target if face else frame), box, marks


@pytest.mark.parametrize("seed", [0, 1])
def test_a_box_near_the_face_is_brought_back_onto_it(detector, seed):
    frame, box, marks = scene(seed)
    rng = np.random.default_rng(seed)
    side = box[2] - box[0]
    expected = box + rng.uniform(-0.2, 0.2, (6, 4)) * side  # (6, 4) jittered boxes
    assert (box_iou(expected, box) < 0.8).any()
    found = refine_faces([frame] * len(expected), expected, detector, CFG)
    for f in found:
        assert f is not None and f.score >= CFG.refine_thresholds[1]
        assert box_iou(f.box, box) >= 0.8
        assert np.abs(f.landmarks - marks).max() < 0.12 * side


@pytest.mark.parametrize("out", [0.2, 0.35])
def test_a_face_cut_by_the_frame_edge_gets_the_whole_face_box(detector, out):
    # `out` of the face box lies past the left edge; the window is padded with zeros there, and O-Net's
    # box reaches past the edge as the face does (the tracker keeps it so: the face is expected next
    # where it is, not where its visible part is)
    h, w = 360, 640
    frame = make_background(h, w, np.random.default_rng(2), textured=True)
    side = 0.78 * 150.0  # the face box's width for a face box 150 px tall
    state = FaceState(
        cx=side * (0.5 - out),
        cy=h / 2,
        height=150.0,
        brightness=0.5,
        contrast=0.5,
        tint=0,
        marks=(False,) * 12,
    )
    box, _ = render_face(frame, state)
    assert box[0] < -0.15 * side
    expected = box + np.array([[8.0, -6.0, 8.0, -6.0], [-5.0, 7.0, -5.0, 7.0]])  # (2, 4)
    for f in refine_faces([frame] * 2, expected, detector, CFG):
        assert f is not None
        assert f.box[0] < 0 and box_iou(f.box, box) >= 0.75


def test_a_crop_without_a_face_gives_no_box(detector):
    empty, box, _ = scene(0, face=False)
    frame, _, _ = scene(0)
    assert refine_faces([empty], box[None], detector, CFG) == [None]
    away = box + np.array([-200.0, 0.0, -200.0, 0.0])  # beside the face: background only
    assert refine_faces([frame], away[None], detector, CFG) == [None]
    # with every threshold at zero a box comes back, and O-Net's score says there is no face
    (anything,) = refine_faces([empty], box[None], detector, FaceConfig(refine_thresholds=(0.0, 0.0)))
    assert anything is not None and anything.score < 0.1


def test_contrast_normalisation_finds_a_dim_flat_face(detector):
    frame, box, _ = scene(0)
    dim = (frame.astype(np.float32) * 0.03 + 30).round().astype(np.uint8)  # about 8 grey levels
    (plain,) = refine_faces([dim], box[None] + 5, detector, FaceConfig(max_gain=1.0))  # no normalisation
    (normalised,) = refine_faces([dim], box[None] + 5, detector, CFG)
    assert plain is None
    assert normalised is not None and box_iou(normalised.box, box) >= 0.8
    lifted = lift_contrast(torch.from_numpy(dim), CFG)
    span = int(dim.max()) - int(dim.min())
    assert lifted is not None and int(lifted.max()) - int(lifted.min()) >= (CFG.max_gain - 0.5) * span
    assert lift_contrast(torch.from_numpy(frame), CFG) is None  # an ordinary frame is left as it is


def test_a_small_face_in_a_large_frame_is_refined_at_its_own_resolution(detector):
    frame, box, _ = scene(2, size=(1080, 1920), height=70.0)
    assert len(detect_faces(torch.from_numpy(frame[::6, ::6].copy())[None], detector)[0]) == 0  # 320 px
    (found,) = refine_faces([frame], (box + 8)[None], detector, CFG)
    assert found is not None and box_iou(found.box, box) >= 0.8


def test_channels_last_nets_give_the_same_faces():
    frames = np.stack([astronaut(), astronaut()[:, ::-1].copy()])
    plain = detect_faces(frames, load_detector(cfg=FaceConfig(follow="detect")))
    fast = detect_faces(frames, load_detector(cfg=CFG))
    for a, b in zip(plain, fast, strict=True):
        assert len(a) == len(b) == 1
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
