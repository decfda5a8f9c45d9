"""Carrying a face on by its appearance (`pipeline.faces.carry`), on frames with the synthetic data set's
real face turned past 60 degrees: the face is carried to where it moved, with its landmarks, and a frame
where it is gone gives no box."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from pipeline.faces.carry import COARSE, FINE, SIDE, _grid, carry_faces
from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import box_iou
from pipeline.synth.faces import FaceState, make_background, render_face

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = FaceConfig(follow="refine")


def turned(
    background: np.ndarray, cx: float, cy: float, yaw: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The synthetic face (identity 2) turned by `yaw` degrees at (cx, cy) on a copy of `background`:
    frame (H, W, 3) uint8, true box (4,) and landmarks (5, 2)."""
    state = FaceState(cx=cx, cy=cy, height=220.0, brightness=0.5, contrast=0.5, tint=3,
                      marks=(False,) * 12, identity=2, yaw=yaw)  # fmt: skip
    frame = background.copy()
    box, marks = render_face(frame, state)
    return frame, np.asarray(box, np.float32), np.asarray(marks, np.float32)


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return make_background(720, 1280, np.random.default_rng(4), textured=True)


@pytest.mark.parametrize(("yaw", "step"), [(62.0, (7.0, -3.0)), (68.0, (-5.0, 4.0))])
def test_a_turned_face_is_carried_to_where_it_moved(background, yaw, step):
    before, box0, marks0 = turned(background, 600, 360, yaw - 2)
    now, box1, _ = turned(background, 600 + step[0], 360 + step[1], yaw)
    (carried,) = carry_faces([now], box0[None], [(before, box0, marks0)], CFG)
    assert carried is not None and carried.similarity >= CFG.carry_similarity
    assert float(box_iou(carried.box, box1)) > 0.75
    moved = (carried.box[:2] + carried.box[2:]) / 2 - (box0[:2] + box0[2:]) / 2
    np.testing.assert_allclose(moved, step, atol=4.0)  # the box followed the face's step
    np.testing.assert_allclose(carried.landmarks - marks0, np.broadcast_to(moved, (5, 2)), atol=4.0)


def test_a_face_that_is_gone_is_not_carried(background):
    before, box0, marks0 = turned(background, 600, 360, 60.0)
    (carried,) = carry_faces([background], box0[None], [(before, box0, marks0)], CFG)
    assert carried is None


def test_the_similarity_setting_gates_the_carried_face(background):
    before, box0, marks0 = turned(background, 600, 360, 60.0)
    now, _, _ = turned(background, 604, 360, 62.0)
    (found,) = carry_faces([now], box0[None], [(before, box0, marks0)], CFG)
    assert found is not None
    strict = replace(CFG, carry_similarity=min(found.similarity + 0.01, 1.0))
    assert carry_faces([now], box0[None], [(before, box0, marks0)], strict) == [None]


@pytest.mark.parametrize("grid", [COARSE, FINE, ((0.0,), (1.0,))], ids=["coarse", "fine", "one"])
@pytest.mark.parametrize("corner", [(20.0, 16.0), (-9.0, 50.0), (60.0, -4.5)], ids=["inside", "left", "top"])
def test_the_grid_templates_are_what_roi_align_cuts(grid, corner):
    """The separable cut of a grid's templates equals roi_align's (aligned, two samples per bin) on every
    trial box, boxes reaching out of the window included (zeros more than a pixel out, clamped within)."""
    rng = np.random.default_rng(3)
    luma = (rng.random((88, 101)) * 255).astype(np.float32)  # (h, w)
    box = np.array([corner[0], corner[1], corner[0] + 41.0, corner[1] + 44.5], np.float32)
    trials, cuts = _grid(luma, box, grid)
    assert trials.shape == (len(grid[0]) ** 2 * len(grid[1]), 4)
    assert np.isclose(
        trials[:, 2] - trials[:, 0], 41.0 * np.repeat(grid[1], len(grid[0]) ** 2), rtol=1e-5
    ).all()
    rois = torch.cat([torch.zeros(len(trials), 1), torch.from_numpy(trials)], dim=1)
    ref = roi_align(torch.from_numpy(luma)[None, None], rois, (SIDE, SIDE), 1.0, 2, True).flatten(1)
    ref = ref - ref.mean(dim=1, keepdim=True)
    ref = ref / ref.norm(dim=1, keepdim=True).clamp_min(1e-3)
    assert np.abs(cuts - ref.numpy()).max() < 1e-5
